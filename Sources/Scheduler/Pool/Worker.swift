import Foundation
import Logging

/// A member of a group's pool: its own thread and its own `process.lua`
/// state, running one lease at a time. Id `<group>-<n>`.
final class Worker: @unchecked Sendable {
    // Threading rule: `script` is created, used and dropped only on `thread`;
    // leases run as jobs on `thread`, one after another.
    let id: String
    let index: Int
    let environment: WorkerEnvironment
    private let thread: DedicatedThread
    var script: LuaState?

    /// Starts the worker's thread and loads `process.lua` on it; it must define `process(msg)`.
    static func start(index: Int, scriptPath: String, environment: WorkerEnvironment) async throws -> Worker {
        let id = "\(environment.group.name)-\(index)"
        let worker = Worker(id: id, index: index, environment: environment, thread: DedicatedThread(name: "worker-\(id)"))
        do {
            try await worker.thread.run { [worker] in
                let bindings = ScriptBindings(script: scriptPath, worker: id, group: environment.group.name, logger: environment.logger)
                let state = try LuaState.load(path: scriptPath, bindings: bindings)
                guard state.hasFunction("process") else {
                    throw LuaError(script: scriptPath, line: nil, message: "the script must define a global function process(msg)")
                }
                worker.script = state
            }
        } catch {
            worker.thread.stop()
            throw error
        }
        return worker
    }

    private init(id: String, index: Int, environment: WorkerEnvironment, thread: DedicatedThread) {
        self.id = id
        self.index = index
        self.environment = environment
        self.thread = thread
    }

    /// Runs `lease` on the worker's thread; slice boundaries and the lease's
    /// end are reported through `onReport`.
    func begin(_ lease: Lease, feed: PartitionFeed, onReport: @escaping @Sendable (SliceReport) -> Void) {
        thread.submit { [self] in
            runLease(lease, feed: feed, onReport: onReport)
        }
    }

    /// Drops the Lua state and ends the thread (after any running lease).
    func close() async {
        await thread.run { [self] in script = nil }
        thread.stop()
    }

    var logMetadata: Logger.Metadata {
        [LogKey.group: "\(environment.group.name)", LogKey.worker: "\(id)"]
    }
}
