import Foundation
import Logging
import Synchronization

/// What `on_task` decided about an API-submitted task.
public enum TaskDecision: Sendable, Equatable {
    /// Publish this (possibly changed) task.
    case accept(TaskSpec)
    /// Refuse the task; the API answers 400 with this reason.
    case refuse(String)
}

/// `scripts/generate.lua`: `generate(tick, pool)` returns tasks to publish
/// every `producer.interval_ms`; optional `on_task(task)` vets API-submitted
/// tasks; the optional global `tasks` is the task pool's initial content.
public final class GenerateScript: Sendable {
    private let host: ScriptHost
    private let catalog: ScriptCatalog
    private let logger: Logger
    /// The catalog generation the host's state was made from.
    private let loadedGeneration: Mutex<Int>
    /// Whether the loaded state defines `on_task`: without it a posted task
    /// is accepted without a hop to the Lua thread (the API's hot path).
    private let definesOnTask: Mutex<Bool>
    /// The global `tasks` of the script as loaded at start (the pool's seed).
    public let initialTasks: [TaskSpec]

    /// Loads the scripts of `scriptsDirectory` and starts its `generate.lua`
    /// (a catalog of its own: for tools and tests that need only this script).
    public static func load(scriptsDirectory: String, logger: Logger, limits: LuaLimits = .standard) async throws -> GenerateScript {
        let catalog = try await ScriptCatalog.load(directory: scriptsDirectory, limits: limits, needsProcess: false, logger: logger)
        return try await load(catalog: catalog, logger: logger)
    }

    /// Starts `generate.lua` from the catalog on its own thread.
    public static func load(catalog: ScriptCatalog, logger: Logger) async throws -> GenerateScript {
        guard let source = catalog.source(ScriptCatalog.generate) else {
            throw LuaError(script: catalog.directory, line: nil, message: "generate.lua is missing")
        }
        let generation = catalog.generation
        let host = try await ScriptHost.load(source: source, limits: catalog.limits, worker: "producer", group: nil, logger: logger,
                                             features: catalog.features)
        let path = source.path
        do {
            let (initial, onTask) = try await host.withState { state in
                (try Self.readTasks(state.global("tasks"), path: path), state.hasFunction("on_task"))
            }
            return GenerateScript(host: host, catalog: catalog, logger: logger, generation: generation,
                                  initialTasks: initial, definesOnTask: onTask)
        } catch {
            await host.close()
            throw error
        }
    }

    private init(host: ScriptHost, catalog: ScriptCatalog, logger: Logger, generation: Int,
                 initialTasks: [TaskSpec], definesOnTask: Bool) {
        self.host = host
        self.catalog = catalog
        self.logger = logger
        self.loadedGeneration = Mutex(generation)
        self.initialTasks = initialTasks
        self.definesOnTask = Mutex(definesOnTask)
    }

    /// The global `tasks`: nil (no initial pool) or a list of task tables.
    static func readTasks(_ value: LuaValue, path: String) throws -> [TaskSpec] {
        if case .nil = value { return [] }
        guard let items = value.arrayValue else {
            throw LuaError(script: path, line: nil, message: "global 'tasks' must be a list of tasks, got \(value.typeName)")
        }
        return try items.enumerated().map { index, item in
            do {
                return try TaskSpec(lua: item)
            } catch {
                throw LuaError(script: path, line: nil, message: "tasks[\(index + 1)]: \(error)")
            }
        }
    }

    /// Switches to the catalog's current generate.lua if a reload happened
    /// (at a call boundary: never in the middle of a call).
    private func refresh() async {
        let current = catalog.generation
        // Check and claim in one step, so concurrent calls switch only once.
        let claimed = loadedGeneration.withLock { loaded in
            guard loaded != current else { return false }
            loaded = current
            return true
        }
        guard claimed else { return }
        guard let source = catalog.source(ScriptCatalog.generate) else { return }
        do {
            try await host.replace(with: source)
            let onTask = (try? await host.withState { $0.hasFunction("on_task") }) ?? true
            definesOnTask.withLock { $0 = onTask }
            logger.info("generate.lua switched to version \(source.version)", metadata: [LogKey.script: "\(source.path)"])
        } catch {
            catalog.countError(script: ScriptCatalog.generate, hook: "init")
            logger.error("generate.lua could not switch, the old version stays: \(error)", metadata: [LogKey.script: "\(source.path)"])
        }
    }

    /// The global `schedules` of the current version (switching to a
    /// reloaded one first): the script's named schedules.
    func scheduleTable() async throws -> LuaValue {
        await refresh()
        return try await host.withState { $0.global("schedules") }
    }

    /// Path of the loaded script.
    public var path: String { host.path }

    /// Calls `generate(tick, pool)` (`pool`: a fresh copy of the pool's
    /// tasks, in order, so the script cannot change the pool); returns its
    /// tasks followed by any it passed to `scheduler.emit`. Throws `LuaError`
    /// if it raised or answered anything but nil or a list of task tables.
    public func generate(tick: Int, pool: [TaskSpec] = []) async throws -> [TaskSpec] {
        await refresh()
        let path = self.path
        let poolValue = LuaValue.table(Dictionary(uniqueKeysWithValues: pool.enumerated().map {
            (LuaValue.integer(Int64($0.offset + 1)), $0.element.luaValue)
        }))
        return try await countingErrors(hook: "generate") { try await self.host.withState { state in
            let answer = try state.call("generate", [.integer(Int64(tick)), poolValue], results: 1)[0]
            let emitted = state.bindings.takeEmitted().map(TaskSpec.init(emitted:))
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
                // The returned tasks share the call's emit budget with scheduler.emit.
                guard state.bindings.output.charge(bytes: tasks[index].heldBytes, by: "generate()") else {
                    throw LuaError(script: path, line: nil, message: "emit limit exceeded (\(state.bindings.output.breach ?? ""))", budget: .output)
                }
            }
            return tasks + emitted
        } }
    }

    /// Calls `on_task(task)` if the script defines it, else accepts the task.
    /// Throws `LuaError` if it raised or answered something else than a task
    /// table or `nil, "reason"`.
    public func onTask(_ task: TaskSpec) async throws -> TaskDecision {
        await refresh()
        guard definesOnTask.withLock({ $0 }) else { return .accept(task) }
        let path = self.path
        return try await countingErrors(hook: "on_task") { try await self.host.withState { state in
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
        } }
    }

    private func countingErrors<T>(hook: String, _ body: () async throws -> T) async throws -> T {
        let started = ContinuousClock.now
        defer { catalog.recordCall(script: ScriptCatalog.generate, hook: hook, .now - started) }
        do {
            return try await body()
        } catch {
            catalog.countError(script: ScriptCatalog.generate, hook: hook)
            throw error
        }
    }

    /// Drops the Lua state and its thread.
    public func close() async {
        await host.close()
    }
}
