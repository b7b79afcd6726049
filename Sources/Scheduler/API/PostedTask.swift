import Hummingbird
import Logging

extension GenerateScript {
    /// Runs `on_task(task)` for a task posted to the API: the task as it
    /// accepted it (maybe changed), a 400 with its reason when it refused,
    /// a 500 when it failed (logged with the script).
    func acceptPosted(_ task: TaskSpec, logger: Logger) async throws -> TaskSpec {
        do {
            switch try await onTask(task) {
            case .accept(let changed): return changed
            case .refuse(let reason): throw APIError(.badRequest, reason)
            }
        } catch let error as LuaError {
            logger.error("on_task() failed: \(error)", metadata: [LogKey.script: "\(error.script)"])
            throw APIError(.internalServerError, "on_task() failed: \(error)")
        }
    }
}
