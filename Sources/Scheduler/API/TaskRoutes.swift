import Foundation
import Hummingbird
import Logging

/// `POST /tasks/generate` and `GET /tasks`: the seed's task API.
struct TaskRoutes: Sendable {
    let publisher: TaskPublisher
    let script: GenerateScript
    let maxBodyBytes: Int

    func add(to router: Router<BasicRequestContext>) {
        router.post("/tasks/generate") { request, context in try await generate(request, context) }
        router.get("/tasks") { _, _ in
            JSONBody.response(publisher.pendingTasks.map { PendingTaskView(topic: $0.topic, message: $0.message) })
        }
    }

    /// Answers `"Success"` only after the broker acknowledged the task.
    private func generate(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        if let type = request.headers[.contentType]?.lowercased(), !Self.isJSON(type) {
            throw APIError(.unsupportedMediaType, "Content-Type must be application/json, got '\(type.prefix(100))'")
        }
        var request = request
        let buffer = try await request.collectBody(upTo: maxBodyBytes)
        let task = try TaskRequest.parse(Data(buffer: buffer))
        let accepted: TaskSpec
        do {
            switch try await script.onTask(task) {
            case .accept(let changed): accepted = changed
            case .refuse(let reason): throw APIError(.badRequest, reason)
            }
        } catch let error as LuaError {
            context.logger.error("on_task() failed: \(error)", metadata: [LogKey.script: "\(error.script)"])
            throw APIError(.internalServerError, "on_task() failed: \(error)")
        }
        do {
            _ = try await publisher.publish(accepted)
        } catch {
            switch error {
            case .invalid(let reason): throw APIError(.badRequest, reason)
            case .timedOut: throw APIError(.serviceUnavailable, "Producer timed out.")
            case .backpressure(let reason): throw APIError(.serviceUnavailable, reason, headers: [.retryAfter: "1"])
            case .kafka(let kafka): throw APIError(.serviceUnavailable, "could not publish: \(kafka)")
            }
        }
        return JSONBody.response("Success")
    }

    static func isJSON(_ contentType: String) -> Bool {
        let mime = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        // curl -d sends application/x-www-form-urlencoded unless told otherwise;
        // the body is read as JSON either way.
        return mime == "application/json" || mime.hasSuffix("+json") || mime == "*/*" || mime.isEmpty
            || mime == "text/plain" || mime == "application/x-www-form-urlencoded"
    }
}

/// An entry of `GET /tasks`, shaped like the seed's.
struct PendingTaskView: Encodable {
    let topic: String
    let message: String
}
