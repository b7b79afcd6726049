/// A Lua failure: a script that does not compile, raised an error, or gave
/// an answer of the wrong shape. Carries Lua's own message and, where Lua
/// gave one, the script's line.
public struct LuaError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Path of the script file.
    public var script: String
    /// Line in `script` where the error was raised, if known.
    public var line: Int?
    /// Lua's message without the `file:line:` prefix.
    public var message: String
    /// Lua traceback, for runtime errors.
    public var traceback: String?
    /// The budget the call broke, if that is why it failed.
    public var budget: LuaBudget?

    /// Creates an error.
    public init(script: String, line: Int?, message: String, traceback: String? = nil, budget: LuaBudget? = nil) {
        self.script = script
        self.line = line
        self.message = message
        self.traceback = traceback
        self.budget = budget
    }

    /// Splits Lua's `chunk:line: message` text; `chunk` is the name the script
    /// was loaded under, replaced by the script's real path.
    init(script: String, chunkName: String, luaMessage: String, traceback: String? = nil) {
        var message = luaMessage
        var line: Int?
        let prefix = chunkName + ":"
        if message.hasPrefix(prefix) {
            let rest = message.dropFirst(prefix.count)
            let digits = rest.prefix { $0.isNumber }
            if let number = Int(digits), rest.dropFirst(digits.count).hasPrefix(": ") {
                line = number
                message = String(rest.dropFirst(digits.count + 2))
            }
        }
        self.init(script: script, line: line, message: message, traceback: traceback)
    }

    public var description: String {
        if let line { return "\(script):\(line): \(message)" }
        return "\(script): \(message)"
    }
}

/// The per-call budgets of `[scripts]` a call can break.
public enum LuaBudget: String, Sendable, Equatable {
    /// `max_instructions`, shared by every coroutine of the call (and the string matcher's steps).
    case instructions
    /// `max_call_ms` of wall-clock time.
    case time
    /// `max_memory_mb` of the state.
    case memory
    /// `max_call_emits` or `max_call_emit_mb`: what the call handed to the daemon.
    case output
}
