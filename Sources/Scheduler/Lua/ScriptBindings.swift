import CLua
import Foundation
import Logging

/// The `scheduler` table every script sees, and the Swift state behind it.
///
/// Threading rule: used only on its script's thread, from inside Lua calls.
///
/// The raw bindings are C trampolines (`clua_trampoline`) that call the Swift
/// functions below; those only read their arguments and fill a `clua_reply`,
/// and the trampoline pushes results or raises in C, so Lua's error longjmp
/// never crosses a Swift frame.
final class ScriptBindings {
    /// Script path, for log metadata.
    let script: String
    /// `scheduler.worker`.
    let worker: String
    /// `scheduler.group` (nil outside a group, e.g. in `generate.lua`).
    let group: String?
    let logger: Logger
    /// Tasks passed to `scheduler.emit` since the last `takeEmitted()`, as
    /// the bytes the script gave (Lua strings are byte strings: a binary
    /// payload or key is published unchanged).
    private(set) var emitted: [OutgoingMessage] = []
    /// Set by `scheduler.yield()`: end the current slice after this message.
    var yieldRequested = false
    /// What features plug into the `scheduler` table (their functions
    /// find their own value with `context(_:)`).
    let features: [ScriptFeature]
    /// What the call in progress handed over (`[scripts] max_call_emits`,
    /// `max_call_emit_mb`); set from the state's limits, reset per call.
    var output = CallOutput(maxItems: .max, maxBytes: .max)

    init(script: String, worker: String, group: String?, logger: Logger, features: [ScriptFeature] = []) {
        self.script = script
        self.worker = worker
        self.group = group
        self.logger = logger
        self.features = features
    }

    /// The value a feature's bindings read back: the first context of type
    /// `T`, nil when no feature gives one (the feature is off here).
    func context<T>(_ type: T.Type) -> T? {
        features.lazy.compactMap { $0.context as? T }.first
    }

    /// Returns and clears the emitted tasks.
    func takeEmitted() -> [OutgoingMessage] {
        defer { emitted.removeAll() }
        return emitted
    }

    /// Lua code run in every state after the libraries: hides what could take
    /// the daemon down or touch files, refuses finalizers (Lua runs `__gc`
    /// with hooks off, out of reach of the budgets, and `lua_close` runs the
    /// pending ones), and exposes the raw bindings.
    static let prelude = """
        os.exit, os.execute, os.remove, os.rename, os.tmpname, os.getenv, os.setlocale = nil
        dofile, loadfile = nil, nil
        local raw_load, raw_setmetatable, rawget, type, error = load, setmetatable, rawget, type, error
        load = function(chunk, name, _, env) return raw_load(chunk, name, "t", env) end
        setmetatable = function(t, mt)
          if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
            error("setmetatable: __gc (finalizers) is not allowed in scripts", 2)
          end
          return raw_setmetatable(t, mt)
        end
        local raw_log = scheduler._log
        scheduler.emit, scheduler.log, scheduler.yield = scheduler._emit, scheduler._log, scheduler._yield
        scheduler._emit, scheduler._log, scheduler._yield = nil, nil, nil
        local tostring, select, concat = tostring, select, table.concat
        print = function(...)
          local parts = {}
          for i = 1, select("#", ...) do parts[#parts + 1] = tostring((select(i, ...))) end
          raw_log("info", concat(parts, "\\t"))
        end
        """

    /// The core's raw bindings, in the first slots of the shim.
    private static let core: [ScriptFeature.Binding] = [
        .init(name: "_emit", function: schedulerEmit), .init(name: "_log", function: schedulerLog),
        .init(name: "_yield", function: schedulerYield), .init(name: "_match", function: stringMatch),
        .init(name: "_charge", function: chargeSteps),
    ]

    /// Points the state's C control block at `bindings` and fills the
    /// shim's slots: the core's functions, then the features'.
    static func register(_ bindings: ScriptBindings, in control: UnsafeMutablePointer<clua_control>) {
        // Unretained: the LuaState holding `control` also holds `bindings`.
        control.pointee.context = Unmanaged.passUnretained(bindings).toOpaque()
        let all = core + bindings.features.flatMap(\.bindings)
        precondition(all.count <= Int(CLUA_BINDINGS), "more script bindings than the shim's CLUA_BINDINGS slots")
        withUnsafeMutableBytes(of: &control.pointee.bindings) { slots in
            let functions = slots.bindMemory(to: clua_binding?.self)
            for (index, binding) in all.enumerated() { functions[index] = binding.function }
        }
        withUnsafeMutableBytes(of: &control.pointee.names) { slots in
            let names = slots.bindMemory(to: UnsafePointer<CChar>?.self)
            for (index, binding) in all.enumerated() {
                names[index] = UnsafeRawPointer(binding.name.utf8Start).assumingMemoryBound(to: CChar.self)
            }
        }
    }

    static func from(_ context: UnsafeMutableRawPointer?) -> ScriptBindings {
        Unmanaged<ScriptBindings>.fromOpaque(context!).takeUnretainedValue()
    }
}

extension ScriptBindings {
    /// Counts what a binding is about to copy out of the state; false (and
    /// `reply` set to break the call's emit budget) when it would go over.
    /// `level`: the stack level to name (2 behind a prelude wrapper).
    func charge(items: Int = 1, bytes: Int, by function: String, _ reply: UnsafeMutablePointer<clua_reply>, level: Int32 = 1) -> Bool {
        if output.charge(items: items, bytes: bytes, by: function) { return true }
        reply.pointee.level = level
        // Marks the call broken in C (clua_mark): every later instruction
        // fails too, so pcall cannot swallow it; LuaState.check names it.
        reply.pointee.status = Int32(CLUA_REPLY_BUDGET)
        reply.pointee.budget = Int32(CLUA_OUTPUT)
        return false
    }
}

/// The length of a string argument (numbers: the most their text takes),
/// without copying or converting it.
func luaLength(_ L: OpaquePointer, _ index: Int32) -> Int {
    switch lua_type(L, index) {
    case LUA_TSTRING:
        var length = 0
        _ = lua_tolstring(L, index, &length)
        return length
    case LUA_TNUMBER: return 32
    default: return 0
    }
}

extension UnsafeMutablePointer where Pointee == clua_reply {
    /// Makes the trampoline raise `message` at the caller's line (stack `level`).
    func fail(_ message: String, level: Int32 = 1) {
        pointee.status = Int32(CLUA_REPLY_ERROR)
        pointee.level = level
        withUnsafeMutableBytes(of: &pointee.message) { buffer in
            let bytes = message.utf8.prefix(buffer.count - 1)
            buffer.copyBytes(from: bytes)
            buffer[bytes.count] = 0
        }
    }
}

/// A string or number argument as text, without converting it in the Lua
/// stack (`lua_tolstring` on a number allocates, which could raise).
/// A string argument's bytes as they are (numbers as their text), or nil.
func luaBytes(_ L: OpaquePointer, _ index: Int32) -> [UInt8]? {
    if lua_type(L, index) == LUA_TSTRING {
        var length = 0
        guard let pointer = lua_tolstring(L, index, &length) else { return nil }
        return Array(UnsafeRawBufferPointer(start: pointer, count: length))
    }
    return luaText(L, index).map { Array($0.utf8) }
}

/// Whether the value at `index` is text as stored: a number, or a string
/// whose bytes are valid UTF-8 (`luaText` would replace the others).
func luaIsUTF8(_ L: OpaquePointer, _ index: Int32) -> Bool {
    guard lua_type(L, index) == LUA_TSTRING else { return true }
    var length = 0
    guard let pointer = lua_tolstring(L, index, &length) else { return true }
    return String(validating: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self) != nil
}

func luaText(_ L: OpaquePointer, _ index: Int32) -> String? {
    switch lua_type(L, index) {
    case LUA_TSTRING:
        var length = 0
        guard let pointer = lua_tolstring(L, index, &length) else { return nil }
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
    case LUA_TNUMBER:
        if lua_isinteger(L, index) != 0 { return String(clua_tointeger(L, index)) }
        // As Lua prints floats: %.14g, with ".0" when it looks like an integer.
        let text = String(format: "%.14g", clua_tonumber(L, index))
        return text.contains(where: { ".eEnNiI".contains($0) }) ? text : text + ".0"
    default:
        return nil
    }
}

/// Reads a headers table at stack `index` (strings to strings); nil when
/// the argument is absent, or throws the message to raise.
func luaHeaders(_ L: OpaquePointer, _ index: Int32, function: String, argument: String) throws(LuaArgumentError) -> [KafkaHeader]? {
    guard clua_isnoneornil(L, index) == 0 else { return nil }
    guard clua_istable(L, index) != 0 else { throw LuaArgumentError("\(function): \(argument) must be a table or nil") }
    var headers: [KafkaHeader] = []
    // lua_next is raw and allocates nothing; a C function has 20 free slots.
    lua_pushnil(L)
    while lua_next(L, index) != 0 {
        // Values are bytes (Lua strings are byte strings); `false` is a null value.
        let value: [UInt8]??
        if lua_type(L, -1) == LUA_TBOOLEAN && lua_toboolean(L, -1) == 0 { value = .some(nil) }
        else { value = luaBytes(L, -1).map { .some($0) } }
        guard lua_type(L, -2) == LUA_TSTRING, let name = luaText(L, -2), let value else {
            clua_pop(L, 2)
            throw LuaArgumentError("\(function): headers must map strings to strings (or false for a null value)")
        }
        headers.append(KafkaHeader(name: name, bytes: value))
        clua_pop(L, 1)
    }
    // Sorted by name: the record is the same whatever order lua_next yields.
    headers.sort { $0.name < $1.name }
    return headers
}

/// A binding argument that cannot be used; the message is raised in Lua.
struct LuaArgumentError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// `scheduler.emit(topic, message [, key [, headers]])`.
private func schedulerEmit(_ L: OpaquePointer?, _ context: UnsafeMutableRawPointer?, _ reply: UnsafeMutablePointer<clua_reply>?) {
    guard let L, let reply else { return }
    let bindings = ScriptBindings.from(context)
    guard lua_type(L, 1) == LUA_TSTRING, let topic = luaText(L, 1) else {
        return reply.fail("scheduler.emit: argument 1 (topic) must be a string")
    }
    if let problem = TopicName.problem(topic) { return reply.fail("scheduler.emit: \(problem)") }
    // Counted before the copies are made.
    guard bindings.charge(bytes: topic.utf8.count + luaLength(L, 2) + luaLength(L, 3), by: "scheduler.emit", reply) else { return }
    guard let message = luaBytes(L, 2) else { return reply.fail("scheduler.emit: argument 2 (message) must be a string") }
    var key: [UInt8]?
    if clua_isnoneornil(L, 3) == 0 {
        guard let k = luaBytes(L, 3) else { return reply.fail("scheduler.emit: argument 3 (key) must be a string or nil") }
        key = k
    }
    let headers: [KafkaHeader]
    do {
        headers = try luaHeaders(L, 4, function: "scheduler.emit", argument: "argument 4 (headers)") ?? []
    } catch {
        return reply.fail(error.message)
    }
    let headerBytes = headers.reduce(0) { $0 + $1.name.utf8.count + ($1.value?.count ?? 0) }
    guard bindings.charge(items: 0, bytes: headerBytes, by: "scheduler.emit", reply) else { return }
    bindings.appendEmitted(OutgoingMessage(topic: topic, key: key, value: message, headers: headers))
    reply.pointee.push_true = 1
}

/// `scheduler.log(level, text)`.
private func schedulerLog(_ L: OpaquePointer?, _ context: UnsafeMutableRawPointer?, _ reply: UnsafeMutablePointer<clua_reply>?) {
    guard let L, let reply else { return }
    let bindings = ScriptBindings.from(context)
    guard let levelName = luaText(L, 1), let level = Logger.Level(rawValue: levelName.lowercased()) else {
        return reply.fail("scheduler.log: argument 1 must be a level (trace, debug, info, notice, warning, error, critical)")
    }
    guard bindings.charge(items: 0, bytes: luaLength(L, 2), by: "scheduler.log", reply) else { return }
    let message = luaText(L, 2) ?? "(\(String(cString: lua_typename(L, lua_type(L, 2)))))"
    var metadata: Logger.Metadata = [LogKey.script: "\(bindings.script)", LogKey.worker: "\(bindings.worker)"]
    if let group = bindings.group { metadata[LogKey.group] = "\(group)" }
    bindings.logger.log(level: level, "\(message)", metadata: metadata)
}

/// `scheduler.yield()`: ends the current slice after this message.
private func schedulerYield(_ L: OpaquePointer?, _ context: UnsafeMutableRawPointer?, _ reply: UnsafeMutablePointer<clua_reply>?) {
    ScriptBindings.from(context).yieldRequested = true
}

extension ScriptBindings {
    func appendEmitted(_ task: OutgoingMessage) { emitted.append(task) }
}
