import CLua
import Foundation

/// One Lua 5.4 interpreter running one script.
///
/// Not thread-safe and not `Sendable`: a `LuaState` is created, used and
/// dropped on one thread (its `ScriptHost`'s `DedicatedThread`).
final class LuaState {
    private let L: OpaquePointer
    private let memory: UnsafeMutablePointer<clua_memory>
    let limits: LuaLimits
    /// Path of the script file.
    let script: String
    /// Content hash of the source this state runs.
    let version: String
    /// Name Lua uses for the script in messages (`chunk:line: ...`).
    let chunkName: String
    /// Kept alive for as long as `L`: the C functions reach it through a light userdata upvalue.
    let bindings: ScriptBindings

    /// Creates a state with the sandboxed standard libraries and the
    /// `scheduler` table, runs `source` (defining its functions), then its
    /// `init()` if it has one. Throws `LuaError` with file and line.
    static func load(source: ScriptSource, bindings: ScriptBindings, limits: LuaLimits) throws -> LuaState {
        let memory = UnsafeMutablePointer<clua_memory>.allocate(capacity: 1)
        memory.initialize(to: clua_memory(used: 0, limit: limits.maxMemoryBytes))
        guard let L = clua_newstate_limited(memory) else {
            memory.deallocate()
            throw LuaError(script: source.path, line: nil, message: "could not create a Lua state (out of memory)")
        }
        let state = LuaState(L: L, memory: memory, source: source, bindings: bindings, limits: limits)
        try state.openLibraries()
        try state.run(source: source.bytes, chunkName: state.chunkName)
        if state.hasFunction("init") { _ = try state.call("init", [], results: 0) }
        return state
    }

    private init(L: OpaquePointer, memory: UnsafeMutablePointer<clua_memory>, source: ScriptSource, bindings: ScriptBindings, limits: LuaLimits) {
        self.L = L
        self.memory = memory
        self.script = source.path
        self.version = source.version
        self.limits = limits
        // "scripts/generate.lua" rather than a long absolute path: Lua cuts
        // chunk names over LUA_IDSIZE (60) characters.
        let url = URL(fileURLWithPath: source.path)
        self.chunkName = url.deletingLastPathComponent().lastPathComponent + "/" + url.lastPathComponent
        self.bindings = bindings
    }

    /// Calls the script's `shutdown()` hook, if any, before the state is
    /// dropped; an error there is logged, not thrown.
    func finish() {
        guard hasFunction("shutdown") else { return }
        do {
            _ = try call("shutdown", [], results: 0)
        } catch {
            bindings.logger.error("shutdown() failed: \(error)", metadata: [LogKey.script: "\(script)"])
        }
    }

    deinit {
        lua_close(L)
        memory.deallocate()
    }

    private func openLibraries() throws {
        let libraries: [(String, lua_CFunction)] = [
            ("_G", luaopen_base), ("table", luaopen_table), ("string", luaopen_string),
            ("math", luaopen_math), ("utf8", luaopen_utf8), ("coroutine", luaopen_coroutine), ("os", luaopen_os),
        ]
        for (name, open) in libraries {
            luaL_requiref(L, name, open, 1)
            clua_pop(L, 1)
        }
        ScriptBindings.install(bindings, into: L)
        try run(source: Array(ScriptBindings.prelude.utf8), chunkName: "=prelude")
    }

    /// Compiles and runs a chunk (text only: precompiled bytecode is refused).
    private func run(source: [UInt8], chunkName: String) throws {
        let status = source.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { chars in
                luaL_loadbufferx(L, chars.baseAddress, chars.count, "@" + chunkName, "t")
            }
        }
        if status != LUA_OK {
            let message = clua_tostring(L, -1).map { String(cString: $0) } ?? "unknown load error"
            clua_pop(L, 1)
            throw LuaError(script: script, chunkName: chunkName, luaMessage: message)
        }
        try protectedCall(arguments: 0, results: 0)
    }

    /// True if the script defines a global function `name`.
    func hasFunction(_ name: String) -> Bool {
        lua_getglobal(L, name)
        defer { clua_pop(L, 1) }
        return clua_isfunction(L, -1) != 0
    }

    /// A copy of global `name` (`.nil` when unset).
    func global(_ name: String) -> LuaValue {
        lua_getglobal(L, name)
        defer { clua_pop(L, 1) }
        return value(at: -1)
    }

    /// Calls global function `name` with `arguments` and returns its `results` results.
    func call(_ name: String, _ arguments: [LuaValue], results: Int) throws -> [LuaValue] {
        lua_getglobal(L, name)
        guard clua_isfunction(L, -1) != 0 else {
            clua_pop(L, 1)
            throw LuaError(script: script, line: nil, message: "function '\(name)' is not defined")
        }
        for argument in arguments { push(argument) }
        _ = bindings.takeEmitted()  // only this call's emits are reported
        return try callOnStack(arguments: arguments.count, results: results)
    }

    /// Calls the function below `arguments` values already pushed, and pops its results.
    func callOnStack(arguments: Int, results: Int) throws -> [LuaValue] {
        try protectedCall(arguments: arguments, results: results)
        defer { clua_pop(L, Int32(results)) }
        return (0..<results).map { value(at: Int32(-results + $0)) }
    }

    /// The raw state, for extensions in this module that push values directly.
    var rawState: OpaquePointer { L }

    /// `lua_pcall` with a message handler that adds a traceback, under the
    /// instruction budget (a count hook in C, so Lua's error longjmp never
    /// crosses a Swift frame).
    private func protectedCall(arguments: Int, results: Int) throws {
        let base = lua_gettop(L) - Int32(arguments)
        clua_pushcfunction(L, luaTraceback)
        clua_insert(L, base)
        clua_set_budget(L, Int32(clamping: limits.maxInstructions))
        let status = clua_pcall(L, Int32(arguments), Int32(results), base)
        clua_clear_budget(L)
        clua_remove(L, base)
        guard status != LUA_OK else { return }
        var text = clua_tostring(L, -1).map { String(cString: $0) } ?? "error object is not a string"
        clua_pop(L, 1)
        if status == LUA_ERRMEM {
            // Give back what the failed call left behind before the next one.
            clua_gc_collect(L)
            text = "memory limit exceeded (\(limits.maxMemoryBytes / 1024 / 1024) MiB, [scripts] max_memory_mb)"
        } else if text.contains("instruction limit exceeded") {
            text += " (\(limits.maxInstructions) instructions, [scripts] max_instructions)"
        }
        let parts = text.components(separatedBy: "\nstack traceback:\n")
        throw LuaError(script: script, chunkName: chunkName, luaMessage: parts[0],
                       traceback: parts.count > 1 ? parts[1] : nil)
    }

    /// Copies the value at `index` out of the state.
    func value(at index: Int32, depth: Int = 0) -> LuaValue {
        switch lua_type(L, index) {
        case LUA_TNIL, LUA_TNONE: return .nil
        case LUA_TBOOLEAN: return .boolean(lua_toboolean(L, index) != 0)
        case LUA_TNUMBER:
            if lua_isinteger(L, index) != 0 { return .integer(clua_tointeger(L, index)) }
            return .number(clua_tonumber(L, index))
        case LUA_TSTRING:
            var length = 0
            let pointer = lua_tolstring(L, index, &length)
            return .string(pointer.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: length), as: UTF8.self) } ?? "")
        case LUA_TTABLE:
            guard depth < LuaValue.maxDepth else { return .opaque("table") }
            let absolute = lua_absindex(L, index)
            var fields: [LuaValue: LuaValue] = [:]
            lua_pushnil(L)
            while lua_next(L, absolute) != 0 {
                fields[value(at: -2, depth: depth + 1)] = value(at: -1, depth: depth + 1)
                clua_pop(L, 1)
            }
            return .table(fields)
        default:
            return .opaque(String(cString: lua_typename(L, lua_type(L, index))))
        }
    }

    /// Pushes a copy of `value` onto the stack.
    func push(_ value: LuaValue) {
        switch value {
        case .nil, .opaque: lua_pushnil(L)
        case .boolean(let b): lua_pushboolean(L, b ? 1 : 0)
        case .integer(let i): lua_pushinteger(L, i)
        case .number(let d): lua_pushnumber(L, d)
        case .string(let s):
            var s = s
            s.withUTF8 { bytes in
                bytes.withMemoryRebound(to: CChar.self) { _ = lua_pushlstring(L, $0.baseAddress, $0.count) }
            }
        case .table(let fields):
            lua_createtable(L, 0, Int32(fields.count))
            for (key, item) in fields {
                push(key)
                push(item)
                lua_settable(L, -3)
            }
        }
    }
}

/// Message handler for `lua_pcall`: appends a traceback to string errors.
private func luaTraceback(_ L: OpaquePointer?) -> Int32 {
    guard let L else { return 0 }
    if let message = clua_tostring(L, 1) {
        luaL_traceback(L, L, message, 1)
    } else {
        let typeName = String(cString: lua_typename(L, lua_type(L, 1)))
        lua_pushstring(L, "(error object is a \(typeName) value)")
    }
    return 1
}
