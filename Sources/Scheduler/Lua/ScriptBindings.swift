import CLua
import Logging

/// The `scheduler` table every script sees, and the Swift state behind it.
///
/// Threading rule: used only on its script's thread, from inside Lua calls.
final class ScriptBindings {
    /// Script path, for log metadata.
    let script: String
    /// `scheduler.worker`.
    let worker: String
    /// `scheduler.group` (nil outside a group, e.g. in `generate.lua`).
    let group: String?
    let logger: Logger
    /// Tasks passed to `scheduler.emit` since the last `takeEmitted()`.
    private(set) var emitted: [TaskSpec] = []
    /// Set by `scheduler.yield()`: end the current slice after this message.
    var yieldRequested = false

    init(script: String, worker: String, group: String?, logger: Logger) {
        self.script = script
        self.worker = worker
        self.group = group
        self.logger = logger
    }

    /// Returns and clears the emitted tasks.
    func takeEmitted() -> [TaskSpec] {
        defer { emitted.removeAll() }
        return emitted
    }

    /// Lua code run in every state after the libraries: hides what could take
    /// the daemon down or touch files, and wraps the raw C functions so that
    /// their errors are raised at the caller's line.
    static let prelude = """
        os.exit, os.execute, os.remove, os.rename, os.tmpname, os.getenv, os.setlocale = nil
        dofile, loadfile = nil, nil
        local raw_load = load
        load = function(chunk, name, _, env) return raw_load(chunk, name, "t", env) end
        local raw_emit, raw_log, raw_yield = scheduler._emit, scheduler._log, scheduler._yield
        scheduler._emit, scheduler._log, scheduler._yield = nil, nil, nil
        scheduler.yield = function() raw_yield() end
        scheduler.emit = function(topic, message, key, headers)
          local ok, err = raw_emit(topic, message, key, headers)
          if not ok then error(err, 2) end
          return true
        end
        scheduler.log = function(level, text)
          local ok, err = raw_log(level, text)
          if not ok then error(err, 2) end
        end
        print = function(...)
          local parts = {}
          for i = 1, select("#", ...) do parts[#parts + 1] = tostring((select(i, ...))) end
          raw_log("info", table.concat(parts, "\\t"))
        end
        """

    /// Creates the global `scheduler` table in `L`.
    static func install(_ bindings: ScriptBindings, into L: OpaquePointer) {
        let context = Unmanaged.passUnretained(bindings).toOpaque()
        lua_createtable(L, 0, 4)
        lua_pushstring(L, bindings.worker)
        lua_setfield(L, -2, "worker")
        if let group = bindings.group { lua_pushstring(L, group) } else { lua_pushnil(L) }
        lua_setfield(L, -2, "group")
        lua_pushlightuserdata(L, context)
        lua_pushcclosure(L, schedulerEmit, 1)
        lua_setfield(L, -2, "_emit")
        lua_pushlightuserdata(L, context)
        lua_pushcclosure(L, schedulerLog, 1)
        lua_setfield(L, -2, "_log")
        lua_pushlightuserdata(L, context)
        lua_pushcclosure(L, schedulerYield, 1)
        lua_setfield(L, -2, "_yield")
        lua_setglobal(L, "scheduler")
    }

    fileprivate static func from(_ L: OpaquePointer) -> ScriptBindings {
        // Unretained: the LuaState holding this closure also holds `bindings`.
        Unmanaged<ScriptBindings>.fromOpaque(lua_touserdata(L, clua_upvalueindex(1))!).takeUnretainedValue()
    }
}

/// Returns `false, message` to the prelude wrapper, which raises it.
private func fail(_ L: OpaquePointer, _ message: String) -> Int32 {
    lua_pushboolean(L, 0)
    lua_pushstring(L, message)
    return 2
}

private func text(_ L: OpaquePointer, _ index: Int32) -> String? {
    guard lua_type(L, index) == LUA_TSTRING || lua_type(L, index) == LUA_TNUMBER else { return nil }
    var length = 0
    guard let pointer = lua_tolstring(L, index, &length) else { return nil }
    return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
}

/// `scheduler.emit(topic, message [, key [, headers]])`.
private func schedulerEmit(_ L: OpaquePointer?) -> Int32 {
    guard let L else { return 0 }
    let bindings = ScriptBindings.from(L)
    guard lua_type(L, 1) == LUA_TSTRING, let topic = text(L, 1) else {
        return fail(L, "scheduler.emit: argument 1 (topic) must be a string")
    }
    if let problem = TopicName.problem(topic) { return fail(L, "scheduler.emit: \(problem)") }
    guard let message = text(L, 2) else { return fail(L, "scheduler.emit: argument 2 (message) must be a string") }
    var key: String?
    if clua_isnoneornil(L, 3) == 0 {
        guard let k = text(L, 3) else { return fail(L, "scheduler.emit: argument 3 (key) must be a string or nil") }
        key = k
    }
    var headers: [String: String]?
    if clua_isnoneornil(L, 4) == 0 {
        guard clua_istable(L, 4) != 0 else { return fail(L, "scheduler.emit: argument 4 (headers) must be a table or nil") }
        var result: [String: String] = [:]
        lua_pushnil(L)
        while lua_next(L, 4) != 0 {
            guard lua_type(L, -2) == LUA_TSTRING, let name = text(L, -2), let value = text(L, -1) else {
                clua_pop(L, 2)
                return fail(L, "scheduler.emit: headers must map strings to strings")
            }
            result[name] = value
            clua_pop(L, 1)
        }
        headers = result
    }
    bindings.appendEmitted(TaskSpec(topic: topic, message: message, key: key, headers: headers))
    lua_pushboolean(L, 1)
    return 1
}

/// `scheduler.log(level, text)`.
private func schedulerLog(_ L: OpaquePointer?) -> Int32 {
    guard let L else { return 0 }
    let bindings = ScriptBindings.from(L)
    guard let levelName = text(L, 1), let level = Logger.Level(rawValue: levelName.lowercased()) else {
        return fail(L, "scheduler.log: argument 1 must be a level (trace, debug, info, notice, warning, error, critical)")
    }
    let message = text(L, 2) ?? "(\(String(cString: lua_typename(L, lua_type(L, 2)))))"
    var metadata: Logger.Metadata = [LogKey.script: "\(bindings.script)", LogKey.worker: "\(bindings.worker)"]
    if let group = bindings.group { metadata[LogKey.group] = "\(group)" }
    bindings.logger.log(level: level, "\(message)", metadata: metadata)
    lua_pushboolean(L, 1)
    return 1
}

/// `scheduler.yield()`: ends the current slice after this message.
private func schedulerYield(_ L: OpaquePointer?) -> Int32 {
    guard let L else { return 0 }
    ScriptBindings.from(L).yieldRequested = true
    return 0
}

extension ScriptBindings {
    fileprivate func appendEmitted(_ task: TaskSpec) { emitted.append(task) }
}
