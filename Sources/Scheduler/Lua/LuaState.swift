import CLua
import Foundation

/// One Lua 5.4 interpreter running one script.
///
/// Not thread-safe and not `Sendable`: a `LuaState` is created, used and
/// dropped on one thread (its `ScriptHost`'s `DedicatedThread`).
///
/// Every entry into Lua (opening the libraries, running a chunk, looking up
/// and calling a function, building its arguments) runs in C under
/// `lua_pcall` and under the call's budgets (`clua_begin_call`), so no Lua
/// error, allocation failure or runaway script can escape a call.
final class LuaState {
    private let L: OpaquePointer
    /// Memory cap and the budgets of the call in progress (C, shared with the hook).
    private let control: UnsafeMutablePointer<clua_control>
    let limits: LuaLimits
    /// Path of the script file.
    let script: String
    /// Content hash of the source this state runs.
    let version: String
    /// Name Lua uses for the script in messages (`chunk:line: ...`).
    let chunkName: String
    /// Kept alive for as long as `L`: the bindings reach it through `control.context`.
    let bindings: ScriptBindings
    /// `msg.group` and `msg.worker` as C strings, made once (`callProcess`).
    var processNames: (group: String, worker: String, groupBytes: [CChar], workerBytes: [CChar], version: Int)?
    /// Whether the script defines `process_batch`, once asked.
    var batchHook: Bool?
    /// Whether the script defines `process_columns`, once asked.
    var columnsHook: Bool?

    /// Creates a state with the sandboxed standard libraries and the
    /// `scheduler` table, runs `source` (defining its functions), then its
    /// `init()` if it has one. Throws `LuaError` with file and line.
    static func load(source: ScriptSource, bindings: ScriptBindings, limits: LuaLimits) throws -> LuaState {
        let control = UnsafeMutablePointer<clua_control>.allocate(capacity: 1)
        control.initialize(to: clua_control())
        control.pointee.limit = limits.maxMemoryBytes
        bindings.output = CallOutput(limits)
        ScriptBindings.register(bindings, in: control)
        guard let L = clua_newstate_limited(control) else {
            control.deallocate()
            throw LuaError(script: source.path, line: nil, message: "could not create a Lua state (out of memory)", budget: .memory)
        }
        let state = LuaState(L: L, control: control, source: source, bindings: bindings, limits: limits)
        clua_gc_generational(L)
        try state.openLibraries()
        try state.run(source: source.bytes, chunkName: state.chunkName)
        if state.hasFunction("init") { _ = try state.call("init", [], results: 0) }
        return state
    }

    private init(L: OpaquePointer, control: UnsafeMutablePointer<clua_control>, source: ScriptSource, bindings: ScriptBindings, limits: LuaLimits) {
        self.L = L
        self.control = control
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
    /// dropped; an error there is logged and returned (for the error count),
    /// not thrown.
    @discardableResult
    func finish() -> Error? {
        guard hasFunction("shutdown") else { return nil }
        do {
            _ = try call("shutdown", [], results: 0)
            return nil
        } catch {
            bindings.logger.error("shutdown() failed: \(error)", metadata: [LogKey.script: "\(script)"])
            return error
        }
    }

    deinit {
        // Bounded: scripts cannot define finalizers (see the prelude), so
        // closing only frees memory.
        lua_close(L)
        control.deallocate()
    }

    private func openLibraries() throws {
        var request = clua_request()
        request.mode = Int32(CLUA_RUN_OPEN)
        let group = bindings.group
        let status = bindings.worker.withCString { worker in
            withOptionalCString(group) { group in
                request.worker = worker
                request.group = group
                return budgeted { clua_protected_run(L, &request) }
            }
        }
        try check(status)
        try run(source: Array(ScriptBindings.prelude.utf8), chunkName: "=prelude")
        try run(source: Array(StringLibrary.prelude.utf8), chunkName: "=prelude")
        for feature in bindings.features { try run(source: Array(feature.prelude.utf8), chunkName: "=prelude") }
    }

    /// Compiles and runs a chunk (text only: precompiled bytecode is refused).
    private func run(source: [UInt8], chunkName: String) throws {
        // lua_load is protected by Lua itself.
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
        try check(budgeted { clua_protected_call(L, 0, 0) })
    }

    /// True if the script defines a global function `name`.
    func hasFunction(_ name: String) -> Bool {
        var request = clua_request()
        request.mode = Int32(CLUA_RUN_PROBE)
        let status = name.withCString { function in
            request.function = function
            return budgeted { clua_protected_run(L, &request) }
        }
        // A global table whose __index fails or loops counts as "no such function".
        guard (try? check(status)) != nil else { return false }
        return request.found != 0
    }

    /// A copy of global `name` (`.nil` when unset).
    func global(_ name: String) -> LuaValue {
        lua_getglobal(L, name)
        defer { clua_pop(L, 1) }
        return value(at: -1)
    }

    /// Calls global function `name` with `arguments` and returns its `results` results.
    func call(_ name: String, _ arguments: [LuaValue], results: Int) throws -> [LuaValue] {
        var list = LuaPushList()
        for argument in arguments { list.append(argument) }
        return try call(name, list, results: results)
    }

    /// Calls global function `name` with the values of `list`: the lookup,
    /// the arguments and the call all run in one protected, budgeted call.
    func call(_ name: String, _ list: LuaPushList, results: Int) throws -> [LuaValue] {
        try call(name, results: results) { request in
            request.arguments = list.count
            request.count = list.ops.count
            return list.ops.withUnsafeBufferPointer { ops in
                list.arena.withUnsafeBytes { arena in
                    request.ops = ops.baseAddress
                    request.arena = arena.baseAddress?.assumingMemoryBound(to: CChar.self)
                    return budgeted { clua_protected_run(L, &request) }
                }
            }
        }
    }

    /// Calls global function `name` with one message table built from
    /// `message` in C (the per-message fast path).
    func call(_ name: String, message: UnsafePointer<clua_message>, results: Int) throws -> [LuaValue] {
        try call(name, messages: UnsafeBufferPointer(start: message, count: 1), asList: false, results: results)
    }

    /// Calls global function `name` with one message table, or (`asList`)
    /// with the list of `messages`, built in C.
    func call(_ name: String, messages: UnsafeBufferPointer<clua_message>, asList: Bool, asColumns: Bool = false, results: Int) throws -> [LuaValue] {
        try call(name, messages: messages, asList: asList, asColumns: asColumns, results: results) { top in
            (0..<results).map { value(at: top + 1 + Int32($0)) }
        }
    }

    /// Calls global function `name` with messages built in C; `read`
    /// converts its `results` results (the first just above the given top),
    /// so the per-message path allocates no result array.
    /// `headers` reads a message's headers when the script first reads
    /// `batch.headers` or `msg.headers` (nil: none has headers).
    func call<T>(_ name: String, messages: UnsafeBufferPointer<clua_message>, asList: Bool, asColumns: Bool = false,
                 headers: HeaderReader? = nil, results: Int, read: (Int32) -> T) throws -> T {
        try call(name, results: results, read: read) { request in
            request.arguments = 1
            request.message = messages.baseAddress
            request.message_count = messages.count
            request.message_list = asList || asColumns ? 1 : 0
            request.message_columns = asColumns ? 1 : 0
            request.read_headers = headers?.read
            request.headers_context = headers?.context
            return budgeted { clua_protected_run(L, &request) }
        }
    }

    /// How a run of `callEach` ended: `done` calls succeeded; `answer` is
    /// nil, nil when no call failed (every message was done, or `after`
    /// stopped the run), else the results of the call of message `done`
    /// that failed, or the error it raised (budgets included).
    struct EachRun {
        var done: Int
        var answer: Result<(LuaValue, LuaValue), Error>
        /// When the last call began (`clua_now_ns`), to time a failed call.
        var lastStartedNs: Int64
    }

    /// Calls global function `name` once per message, in order, each call
    /// under its own budget (`process(msg)`), in one protected call: the
    /// per-message path without a Swift round trip per message. After each
    /// call that succeeded, `after(index, nanoseconds)` runs (inside the Lua
    /// call: it must not use this state); false stops the run there.
    /// Each call has its own emit budget too (`CallOutput`): `after` takes
    /// what the call emitted, then the budget starts again for the next.
    func callEach(_ name: String, messages: UnsafeBufferPointer<clua_message>, headers: HeaderReader?,
                  after: (Int, Int64) -> Bool) -> EachRun {
        let bindings = self.bindings
        let afterEach = { (index: Int, nanoseconds: Int64) -> Bool in
            defer { bindings.output.reset() }
            return after(index, nanoseconds)
        }
        return withoutActuallyEscaping(afterEach) { after in
            var box = AfterBox(body: after)
            return withUnsafeMutablePointer(to: &box) { each(name, messages: messages, headers: headers, after: UnsafeMutableRawPointer($0)) }
        }
    }

    /// `callEach` without `after`.
    func callEach(_ name: String, messages: UnsafeBufferPointer<clua_message>, headers: HeaderReader?) -> EachRun {
        each(name, messages: messages, headers: headers, after: nil)
    }

    private func each(_ name: String, messages: UnsafeBufferPointer<clua_message>, headers: HeaderReader?,
                      after: UnsafeMutableRawPointer?) -> EachRun {
        var done = 0
        var started: Int64 = 0
        let answer = Result {
            try call(name, results: 2, read: { top in (value(at: top + 1), value(at: top + 2)) }) { request in
                request.arguments = 1
                request.message = messages.baseAddress
                request.message_count = messages.count
                request.message_each = 1
                request.each_instructions = Int64(limits.maxInstructions)
                request.each_milliseconds = Int64(limits.maxCallMs)
                request.read_headers = headers?.read
                request.headers_context = headers?.context
                if let after {
                    request.after = Self.afterTrampoline
                    request.after_context = after
                }
                let status = budgeted { clua_protected_run(L, &request) }
                done = request.done
                started = request.started_ns
                return status
            }
        }
        return EachRun(done: done, answer: answer, lastStartedNs: started)
    }

    /// The closure `callEach` hands to C as `after`.
    private struct AfterBox {
        let body: (Int, Int64) -> Bool
    }

    private static let afterTrampoline: @convention(c) (UnsafeMutableRawPointer?, Int, Int64) -> Int32 = { context, index, nanoseconds in
        context!.assumingMemoryBound(to: AfterBox.self).pointee.body(index, nanoseconds) ? 0 : 1
    }

    /// The shim's header reader for `process_columns` and its context.
    typealias HeaderReader = (read: @convention(c) (UnsafeRawPointer?, Int, UnsafeMutablePointer<clua_header>?, Int) -> Int, context: UnsafeRawPointer?)

    /// The shared part of a call: `fill` completes the request and runs it.
    private func call(_ name: String, results: Int, _ fill: (inout clua_request) -> Int32) throws -> [LuaValue] {
        try call(name, results: results, read: { top in (0..<results).map { value(at: top + 1 + Int32($0)) } }, fill)
    }

    /// The shared part of a call: `fill` completes the request and runs it;
    /// `read` converts the results, the first of them just above `top`.
    func call<T>(_ name: String, results: Int, read: (Int32) -> T, _ fill: (inout clua_request) -> Int32) throws -> T {
        _ = bindings.takeEmitted()  // only this call's emits are reported
        let top = lua_gettop(L)
        var request = clua_request()
        request.mode = Int32(CLUA_RUN_CALL)
        request.results = Int32(results)
        let status = name.withCString { function in
            request.function = function
            return fill(&request)
        }
        // Drops the results (or what a failed call left) whatever happens.
        defer { lua_settop(L, top) }
        try check(status)
        guard request.found != 0 else {
            throw LuaError(script: script, line: nil, message: "function '\(name)' is not defined")
        }
        // Room to walk result tables (two slots per level); never raises.
        guard lua_checkstack(L, Int32(2 * LuaValue.maxDepth + 8)) != 0 else {
            throw LuaError(script: script, line: nil, message: memoryText(""), budget: .memory)
        }
        return read(top)
    }

    /// Runs `body` under the budgets of one call.
    private func budgeted(_ body: () -> Int32) -> Int32 {
        clua_begin_call(L, Int64(limits.maxInstructions), Int64(limits.maxCallMs))
        bindings.output.reset()
        let status = body()
        clua_end_call(L)
        return status
    }

    private func memoryText(_ elsewhere: String) -> String {
        "memory limit exceeded\(elsewhere) (\(limits.maxMemoryBytes / 1024 / 1024) MiB, [scripts] max_memory_mb)"
    }

    /// Turns a call's outcome into a `LuaError`: a broken budget (even if the
    /// script caught it and the call "succeeded"), a memory error, or the
    /// error the script raised. Pops the error object.
    private func check(_ status: Int32) throws {
        let broken = Int(control.pointee.exhausted)
        guard status != LUA_OK || broken != CLUA_WITHIN else { return }
        var text = ""
        if status != LUA_OK && status != -1 {
            text = errorText(at: -1)
            clua_pop(L, 1)
        }
        let parts = text.components(separatedBy: "\nstack traceback:\n")
        let traceback = parts.count > 1 ? parts[1] : nil
        if broken != CLUA_WITHIN || status == LUA_ERRMEM || status == -1 {
            // Give back what the failed call left behind before the next one.
            clua_gc_collect(L)
        }
        func position(_ source: String, _ line: Int32) -> (Int?, String) {
            guard line > 0 else { return (nil, "") }
            return source == chunkName ? (Int(line), "") : (nil, " in \(source):\(line)")
        }
        if broken != CLUA_WITHIN {
            let c = control.pointee
            let (line, elsewhere) = position(cString(c.where_src), c.where_line)
            let (budget, name, detail): (LuaBudget, String, String)
            switch Int(broken) {
            case CLUA_TIME: (budget, name, detail) = (.time, "time limit exceeded", "\(limits.maxCallMs) ms, [scripts] max_call_ms")
            case CLUA_OUTPUT:
                // What was emitted is dropped now, not at the next call.
                _ = bindings.takeEmitted()
                (budget, name, detail) = (.output, "emit limit exceeded", bindings.output.breach ?? "[scripts] max_call_emits")
            default:
                (budget, name, detail) = (.instructions, "instruction limit exceeded", "\(limits.maxInstructions) instructions, [scripts] max_instructions")
            }
            throw LuaError(script: script, line: line, message: "\(name)\(elsewhere) (\(detail))", traceback: traceback, budget: budget)
        }
        if status == LUA_ERRMEM || status == -1 {
            let c = control.pointee
            let (line, elsewhere) = position(cString(c.memory_src), c.memory_line)
            throw LuaError(script: script, line: line, message: memoryText(elsewhere),
                           traceback: traceback, budget: .memory)
        }
        throw LuaError(script: script, chunkName: chunkName, luaMessage: parts[0], traceback: traceback)
    }

    private func cString<T>(_ tuple: T) -> String {
        withUnsafeBytes(of: tuple) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// The error object's text; never calls metamethods or allocates.
    private func errorText(at index: Int32) -> String {
        if let message = clua_tostring(L, index) {
            var length = 0
            let pointer = lua_tolstring(L, index, &length)
            return pointer.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: length), as: UTF8.self) } ?? String(cString: message)
        }
        return "(error object is a \(String(cString: lua_typename(L, lua_type(L, index)))) value)"
    }

    /// Copies the value at `index` out of the state (raw reads only: no
    /// metamethods, no allocation).
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
}

/// Calls `body` with `text` as a C string, or with nil.
private func withOptionalCString<T>(_ text: String?, _ body: (UnsafePointer<CChar>?) -> T) -> T {
    guard let text else { return body(nil) }
    return text.withCString { body($0) }
}
