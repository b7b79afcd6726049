import Foundation
import Hummingbird
import ServiceLifecycle

/// `GET /dlq`: the dead-letter topics of the configured groups, with how
/// many dead letters each holds and the newest one's error.
/// `POST /dlq/<topic>/redrive`: publishes them back to where they came from.
struct DeadLetterRoutes: Sendable {
    let groups: [GroupConfig]
    let inspector: DeadLetterInspector
    let redriver: Redriver

    func add(to router: Router<BasicRequestContext>) {
        router.get("/dlq") { _, _ in
            do {
                return JSONBody.response(["topics": try await inspector.inspect(groups)])
            } catch {
                throw APIError(.serviceUnavailable, "cannot read the dead-letter topics: \(error)")
            }
        }
        router.post("/dlq/:topic/redrive") { request, context in
            var request = request
            let topic = context.parameters.get("topic") ?? ""
            let known = DeadLetterTopics.of(groups).map(\.topic)
            guard known.contains(topic) else {
                throw APIError(.notFound, "'\(topic.prefix(200))' is not the dead-letter topic of a configured group (GET /dlq lists them: \(known.joined(separator: ", ")))")
            }
            let body = try await request.collectBody(upTo: 64 * 1024)
            let filter = try RedriveRequest.parse(Data(buffer: body))
            let result: RedriveResult
            do {
                // The handler runs under the server's service: its shutdown
                // (the first) ends the redrive after its batch.
                result = try await withGracefulShutdownHandler {
                    try await redriver.redrive(topic, filter: filter)
                } onGracefulShutdown: {
                    redriver.beginStop()
                }
            } catch Redriver.Refusal.busy(let running) {
                throw APIError(.conflict, "a redrive of '\(running)' is running on this daemon; try again once it answered")
            } catch Redriver.Refusal.stopping {
                throw APIError(.serviceUnavailable, "this daemon is stopping; redrive through another daemon or after the restart")
            } catch {
                // Before anything was claimed (the topic's offsets, the ledger): nothing moved.
                throw APIError(.serviceUnavailable, "cannot redrive '\(topic)': \(error)")
            }
            // A redrive that stopped part way says so; what it moved stays moved.
            return JSONBody.response(status: result.error == nil ? .ok : .serviceUnavailable, result)
        }
    }
}

/// The optional body of `POST /dlq/<topic>/redrive`.
enum RedriveRequest {
    static let fields: Set<String> = ["partition", "from_offset", "to_offset", "error_contains"]

    static func parse(_ body: Data) throws(APIError) -> RedriveFilter {
        var filter = RedriveFilter()
        guard !body.isEmpty else { return filter }
        guard let object = try? JSONSerialization.jsonObject(with: body), let fields = object as? [String: Any] else {
            throw APIError(.badRequest, "request body must be empty or a JSON object with any of: \(Self.fields.sorted().joined(separator: ", "))")
        }
        let unknown = Set(fields.keys).subtracting(Self.fields).sorted()
        if !unknown.isEmpty {
            throw APIError(.badRequest, "unknown field(s): \(unknown.map { "'\($0.prefix(64))'" }.joined(separator: ", ")); allowed: \(Self.fields.sorted().joined(separator: ", "))")
        }
        filter.partition = try integer(fields, "partition").map { Int32(clamping: $0) }
        filter.fromOffset = try integer(fields, "from_offset")
        filter.toOffset = try integer(fields, "to_offset")
        if let raw = fields["error_contains"], !(raw is NSNull) {
            guard let text = raw as? String, !text.isEmpty else { throw APIError(.badRequest, "field 'error_contains' must be a non-empty string") }
            filter.errorContains = text
        }
        if let from = filter.fromOffset, let to = filter.toOffset, from > to {
            throw APIError(.badRequest, "field 'from_offset' (\(from)) is after 'to_offset' (\(to))")
        }
        return filter
    }

    private static func integer(_ fields: [String: Any], _ name: String) throws(APIError) -> Int64? {
        guard let raw = fields[name], !(raw is NSNull) else { return nil }
        // JSON booleans are NSNumbers too (type "c"): refused.
        guard let number = raw as? NSNumber, String(cString: number.objCType) != "c",
              number.doubleValue == number.doubleValue.rounded(), number.int64Value >= 0 else {
            throw APIError(.badRequest, "field '\(name)' must be a whole number, 0 or more")
        }
        return number.int64Value
    }
}
