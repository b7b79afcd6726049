import Logging

/// One script in its own Lua state on its own thread.
///
/// Every use of the state goes through `withState`, which runs on the host's
/// `DedicatedThread`, so the `lua_State` lives on exactly one thread.
public final class ScriptHost: @unchecked Sendable {
    // Threading rule: `state` is created, used and dropped only on `thread`.
    private let thread: DedicatedThread
    private var state: LuaState?
    /// Path of the script.
    public let path: String

    /// Loads `path` on a new thread. Throws `LuaError` (with file and line)
    /// if it does not compile or its top level raises.
    public static func load(path: String, worker: String, group: String?, logger: Logger) async throws -> ScriptHost {
        let host = ScriptHost(path: path, thread: DedicatedThread(name: "lua-\(worker)"))
        do {
            try await host.thread.run { [host] in
                let bindings = ScriptBindings(script: path, worker: worker, group: group, logger: logger)
                host.state = try LuaState.load(path: path, bindings: bindings)
            }
        } catch {
            host.thread.stop()
            throw error
        }
        return host
    }

    private init(path: String, thread: DedicatedThread) {
        self.path = path
        self.thread = thread
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

    /// Drops the state (on its thread) and ends the thread.
    public func close() async {
        await thread.run { [self] in state = nil }
        thread.stop()
    }
}
