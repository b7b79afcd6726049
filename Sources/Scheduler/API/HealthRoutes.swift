import Hummingbird

/// `GET /health`.
struct HealthRoutes: Sendable {
    let bootstrapServers: String
    let embeddedBroker: Bool
    let publisher: TaskPublisher

    func add(to router: Router<BasicRequestContext>) {
        router.get("/health") { _, _ in
            JSONBody.response(HealthView(
                status: "ok", bootstrap_servers: bootstrapServers, embedded_broker: embeddedBroker,
                pending_tasks: publisher.pendingCount))
        }
    }
}

/// Body of `GET /health`.
struct HealthView: Encodable {
    let status: String
    let bootstrap_servers: String
    let embedded_broker: Bool
    let pending_tasks: Int
}
