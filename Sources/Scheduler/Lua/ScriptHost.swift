import Logging

/// One script in its own Lua state on its own thread.
///
/// Every use of the state goes through `withState`, which runs on the host's
/// `DedicatedThread`, so the `lua_State` lives on exactly one thread.
public final class ScriptHost: @unchecked Sendable {
    // Safe because `state` is created, used and dropped only on `thread`.
    private let thread: DedicatedThread
    private var state: LuaState?
    private let worker: String
    private let group: String?
    private let logger: Logger
    private let limits: LuaLimits
    private let features: [ScriptFeature]
    /// Path of the script.
    public let path: String

    /// Loads `source` on a new thread. Throws `LuaError` (with file and line)
    /// if it does not compile, its top level or its `init()` raises.
    public static func load(source: ScriptSource, limits: LuaLimits, worker: String, group: String?, logger: Logger) async throws -> ScriptHost {
        try await load(source: source, limits: limits, worker: worker, group: group, logger: logger, features: [])
    }

    /// `load`, with what `features` plug into the `scheduler` table.
    static func load(source: ScriptSource, limits: LuaLimits, worker: String, group: String?, logger: Logger,
                     features: [ScriptFeature]) async throws -> ScriptHost {
        let host = ScriptHost(path: source.path, thread: DedicatedThread(name: "lua-\(worker)"), worker: worker, group: group, logger: logger,
                              limits: limits, features: features)
        do {
            try await host.replace(with: source)
        } catch {
            host.thread.stop()
            throw error
        }
        return host
    }

    private init(path: String, thread: DedicatedThread, worker: String, group: String?, logger: Logger, limits: LuaLimits,
                 features: [ScriptFeature]) {
        self.features = features
        self.path = path
        self.thread = thread
        self.worker = worker
        self.group = group
        self.logger = logger
        self.limits = limits
    }

    /// Loads `source` into a fresh state on the host's thread and, if that
    /// works, drops the old state (after its `shutdown()`). On failure the old
    /// state stays and the error is thrown.
    public func replace(with source: ScriptSource) async throws {
        try await thread.run { [self] in
            let bindings = ScriptBindings(script: source.path, worker: worker, group: group, logger: logger, features: features)
            let fresh = try LuaState.load(source: source, bindings: bindings, limits: limits)
            state?.finish()
            state = fresh
        }
    }

    /// Runs `body` with the state, on the state's thread.
    func withState<T: Sendable>(_ body: @escaping @Sendable (LuaState) throws -> T) async throws -> T {
        try await thread.run { [self] in
            guard let state else { throw LuaError(script: path, line: nil, message: "script host is closed") }
            return try body(state)
        }
    }

    /// True if the script defines global function `name`.
    public func hasFunction(_ name: String) async -> Bool {
        (try? await withState { $0.hasFunction(name) }) ?? false
    }

    /// Calls `shutdown()`, drops the state (on its thread) and ends the thread.
    public func close() async {
        // Throws only if closed before: the state is gone already.
        try? await thread.run { [self] in
            state?.finish()
            state = nil
        }
        thread.stop()
    }
}
