import Hummingbird

/// `GET /dlq`: the dead-letter topics of the configured groups, with how
/// many dead letters each holds and the newest one's error.
struct DeadLetterRoutes: Sendable {
    let groups: [GroupConfig]
    let inspector: DeadLetterInspector

    func add(to router: Router<BasicRequestContext>) {
        router.get("/dlq") { _, _ in
            do {
                return JSONBody.response(["topics": try await inspector.inspect(groups)])
            } catch {
                throw APIError(.serviceUnavailable, "cannot read the dead-letter topics: \(error)")
            }
        }
    }
}
