import Foundation
import Logging
import Synchronization

/// The scripts in force: one validated `ScriptSource` per script name, the
/// reload history and the error counts per script and hook.
///
/// A reload validates every script in fresh Lua states (compile, top level,
/// `init()`, required function) before anything changes; only if all pass
/// does the generation move on. Each Lua state then switches by itself at a
/// safe point: workers between two messages, the coordinator before its next
/// `rotate()`, the generator before its next call.
public final class ScriptCatalog: Sendable {
    /// Script names and the function each must define.
    public static let generate = "generate.lua"
    public static let process = "process.lua"
    public static let rotate = "rotate.lua"

    /// Directory the scripts are read from.
    public let directory: String
    /// Limits for every state made from these scripts.
    public let limits: LuaLimits
    /// Whether process.lua is required (the configuration has groups).
    let needsProcess: Bool
    private let state: Mutex<CatalogState>
    /// Where Lua call durations, errors and reloads are reported.
    let events: any ScriptEvents
    /// What features plug into every script's `scheduler` table.
    let features: [ScriptFeature]
    // Every Lua state compares its generation with this before each call
    // (workers: before every message): one atomic load instead of the lock.
    private let generationCounter = Atomic<Int>(1)
    /// The generation again, for waiting on a reload (the script schedules).
    let generationWatch = WatchedValue(1)

    struct CatalogState {
        var sources: [String: ScriptSource] = [:]
        var loadedAt: [String: Date] = [:]
        var lastReload: ReloadResult?
        var errors: [String: [String: Int]] = [:]
    }

    /// Reads and validates the scripts; throws the first problem (file, line).
    public static func load(
        directory: String, limits: LuaLimits, needsProcess: Bool, logger: Logger, events: any ScriptEvents = UncountedScriptEvents(),
        features: [ScriptFeature] = []
    ) async throws -> ScriptCatalog {
        let sources = try readAll(directory: directory, needsProcess: needsProcess)
        try await validate(sources, limits: limits, logger: logger, features: features)
        return ScriptCatalog(directory: directory, limits: limits, needsProcess: needsProcess, sources: sources, events: events,
                             features: features)
    }

    private init(directory: String, limits: LuaLimits, needsProcess: Bool, sources: [String: ScriptSource], events: any ScriptEvents,
                 features: [ScriptFeature]) {
        self.events = events
        self.features = features
        self.directory = directory
        self.limits = limits
        self.needsProcess = needsProcess
        let now = Date()
        self.state = Mutex(CatalogState(sources: sources, loadedAt: sources.mapValues { _ in now }))
    }

    /// Moves on each successful reload; states compare it with theirs.
    public var generation: Int { generationCounter.load(ordering: .acquiring) }

    /// The current version of `name`, or nil if that script is absent (rotate.lua is optional).
    public func source(_ name: String) -> ScriptSource? {
        state.withLock { $0.sources[name] }
    }

    /// Counts a Lua error of `script` in `hook` (e.g. process.lua, process).
    public func countError(script: String, hook: String) {
        state.withLock { $0.errors[script, default: [:]][hook, default: 0] += 1 }
        events.scriptFailed(script: script, hook: hook)
    }

    /// Records the duration of one call (for hooks that are not per message).
    func recordCall(script: String, hook: String, _ duration: Duration) {
        events.scriptCalled(script: script, hook: hook, duration: duration)
    }

    /// Re-reads and validates every script; swaps them in only if all pass.
    public func reload(logger: Logger) async -> ReloadResult {
        let result: ReloadResult
        do {
            let sources = try Self.readAll(directory: directory, needsProcess: needsProcess)
            try await Self.validate(sources, limits: limits, logger: logger, features: features)
            let now = Date()
            let changed = state.withLock { current -> [String] in
                let changed = sources.filter { current.sources[$0.key]?.version != $0.value.version }.keys.sorted()
                for name in changed { current.loadedAt[name] = now }
                for name in current.sources.keys where sources[name] == nil { current.loadedAt[name] = nil }
                current.sources = sources
                return changed
            }
            let generation = generationCounter.add(1, ordering: .releasing).newValue
            generationWatch.update { $0 = max($0, generation) }
            result = ReloadResult(at: now, ok: true, changed: changed, error: nil)
            logger.notice("scripts reloaded", metadata: ["changed": "\(changed.joined(separator: ","))"])
        } catch {
            let lua = error as? LuaError ?? LuaError(script: directory, line: nil, message: "\(error)")
            result = ReloadResult(at: Date(), ok: false, changed: [], error: lua)
            logger.error("script reload failed, the running scripts stay: \(lua)", metadata: [
                LogKey.script: "\(lua.script)", LogKey.line: "\(lua.line.map(String.init) ?? "?")",
            ])
        }
        state.withLock { $0.lastReload = result }
        events.scriptsReloaded(ok: result.ok)
        return result
    }

    /// The catalog as shown by `GET /scripts`.
    public func view() -> ScriptsView {
        state.withLock { current in
            ScriptsView(
                directory: directory, generation: generation,
                scripts: current.sources.values.sorted { $0.name < $1.name }.map { source in
                    ScriptView(name: source.name, path: source.path, version: source.version,
                               loaded_at: current.loadedAt[source.name].map(ISO8601DateFormatter().string) ?? "",
                               errors: current.errors[source.name] ?? [:])
                },
                last_reload: current.lastReload.map(ReloadView.init))
        }
    }

    static func readAll(directory: String, needsProcess: Bool) throws -> [String: ScriptSource] {
        let base = URL(fileURLWithPath: directory)
        var sources: [String: ScriptSource] = [:]
        sources[generate] = try ScriptSource.read(path: base.appendingPathComponent(generate).path)
        let processPath = base.appendingPathComponent(process).path
        if needsProcess || FileManager.default.fileExists(atPath: processPath) {
            sources[process] = try ScriptSource.read(path: processPath)
        }
        let rotatePath = base.appendingPathComponent(rotate).path
        if FileManager.default.fileExists(atPath: rotatePath) {
            sources[rotate] = try ScriptSource.read(path: rotatePath)
        }
        return sources
    }

    /// The function `name` must define.
    static func requiredFunction(_ name: String) -> String? {
        switch name {
        case generate: "generate"
        case process: "process"
        case rotate: "rotate"
        default: nil
        }
    }

    /// Loads each source in a fresh state on a scratch thread: compile, top
    /// level, `init()`, required function; then `shutdown()` and drop.
    static func validate(_ sources: [String: ScriptSource], limits: LuaLimits, logger: Logger, features: [ScriptFeature] = []) async throws {
        let thread = DedicatedThread(name: "lua-validate")
        defer { thread.stop() }
        for source in sources.values.sorted(by: { $0.name < $1.name }) {
            try await thread.run {
                let bindings = ScriptBindings(script: source.path, worker: "validate", group: nil, logger: logger,
                                              features: features.map(\.off))
                let state = try LuaState.load(source: source, bindings: bindings, limits: limits)
                defer { state.finish() }
                if let required = requiredFunction(source.name), !state.hasFunction(required) {
                    throw LuaError(script: source.path, line: nil, message: "the script must define a global function \(required)(...)")
                }
            }
        }
    }
}

/// The outcome of one reload.
public struct ReloadResult: Sendable {
    /// When it ran.
    public var at: Date
    /// True if the new scripts are in force.
    public var ok: Bool
    /// Scripts whose text changed.
    public var changed: [String]
    /// Why it failed (file, line, message).
    public var error: LuaError?
}
