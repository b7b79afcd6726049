import Foundation
import Logging

/// What `on_task` decided about an API-submitted task.
public enum TaskDecision: Sendable, Equatable {
    /// Publish this (possibly changed) task.
    case accept(TaskSpec)
    /// Refuse the task; the API answers 400 with this reason.
    case refuse(String)
}

/// `scripts/generate.lua`: `generate(tick)` returns tasks to publish every
/// `producer.interval_ms`; optional `on_task(task)` vets API-submitted tasks.
public final class GenerateScript: Sendable {
    /// File name of the script inside the scripts directory.
    public static let fileName = "generate.lua"
    private let host: ScriptHost

    /// Loads `generate.lua` from `scriptsDirectory`; it must define `generate`.
    public static func load(scriptsDirectory: String, logger: Logger) async throws -> GenerateScript {
        let path = URL(fileURLWithPath: scriptsDirectory).appendingPathComponent(fileName).path
        let host = try await ScriptHost.load(path: path, worker: "producer", group: nil, logger: logger)
        guard await host.hasFunction("generate") else {
            await host.close()
            throw LuaError(script: path, line: nil, message: "the script must define a global function generate(tick)")
        }
        return GenerateScript(host: host)
    }

    private init(host: ScriptHost) {
        self.host = host
    }

    /// Path of the loaded script.
    public var path: String { host.path }

    /// Calls `generate(tick)`; returns its tasks followed by any it passed to
    /// `scheduler.emit`. Throws `LuaError` if it raised or answered anything
    /// but nil or a list of task tables.
    public func generate(tick: Int) async throws -> [TaskSpec] {
        let path = self.path
        return try await host.withState { state in
            let answer = try state.call("generate", [.integer(Int64(tick))], results: 1)[0]
            let emitted = state.bindings.takeEmitted()
            if case .nil = answer { return emitted }
            guard let items = answer.arrayValue else {
                throw LuaError(script: path, line: nil,
                               message: "generate() must return a list of tasks or nil, got \(answer.typeName)")
            }
            var tasks: [TaskSpec] = []
            for (index, item) in items.enumerated() {
                do {
                    tasks.append(try TaskSpec(lua: item))
                } catch {
                    throw LuaError(script: path, line: nil, message: "generate() result [\(index + 1)]: \(error)")
                }
            }
            return tasks + emitted
        }
    }

    /// Calls `on_task(task)` if the script defines it, else accepts the task.
    /// Throws `LuaError` if it raised or answered something else than a task
    /// table or `nil, "reason"`.
    public func onTask(_ task: TaskSpec) async throws -> TaskDecision {
        let path = self.path
        return try await host.withState { state in
            guard state.hasFunction("on_task") else { return .accept(task) }
            let answer = try state.call("on_task", [task.luaValue], results: 2)
            _ = state.bindings.takeEmitted()
            switch answer[0] {
            case .nil, .boolean(false):
                return .refuse(answer[1].stringValue ?? "refused by on_task")
            case .table:
                do {
                    return .accept(try TaskSpec(lua: answer[0]))
                } catch {
                    throw LuaError(script: path, line: nil, message: "on_task() returned a bad task: \(error)")
                }
            case let other:
                throw LuaError(script: path, line: nil,
                               message: "on_task() must return a task table, or nil and a reason; got \(other.typeName)")
            }
        }
    }

    /// Drops the Lua state and its thread.
    public func close() async {
        await host.close()
    }
}
