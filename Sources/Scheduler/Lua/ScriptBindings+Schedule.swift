import CLua
import Foundation

/// `scheduler._schedule(topic, message, key, headers, at, after, every, cron, timezone)`,
/// behind `scheduler.schedule{...}` (the prelude checks the table's fields):
/// returns the new schedule's id. Outside `process()` the record is written
/// at once; inside, it travels as an emit of the message being processed,
/// so it is stored before that message's offset is committed.
func schedulerSchedule(_ L: OpaquePointer?, _ context: UnsafeMutableRawPointer?, _ reply: UnsafeMutablePointer<clua_reply>?) {
    guard let L, let reply else { return }
    let bindings = ScriptBindings.from(context)
    let name = "scheduler.schedule"
    guard let placement = bindings.schedules else { return reply.fail("\(name): schedules are not available here", level: 2) }
    guard lua_type(L, 1) == LUA_TSTRING, let topic = luaText(L, 1) else { return reply.fail("\(name): field 'topic' must be a string", level: 2) }
    if let problem = TopicName.problem(topic) { return reply.fail("\(name): \(problem)", level: 2) }
    // Counted before the copies are made (headers: the table's strings, below).
    guard bindings.charge(bytes: topic.utf8.count + luaLength(L, 2) + luaLength(L, 3), by: name, reply, level: 2) else { return }
    // A schedule's task is stored as text (like a posted task): bytes that
    // are not UTF-8 are refused rather than altered.
    let notText = "must be UTF-8 text (a schedule stores its task as text; scheduler.emit takes any bytes)"
    guard let message = luaText(L, 2) else { return reply.fail("\(name): field 'message' must be a string", level: 2) }
    guard luaIsUTF8(L, 2) else { return reply.fail("\(name): field 'message' \(notText)", level: 2) }
    var key: String?
    if clua_isnoneornil(L, 3) == 0 {
        guard let text = luaText(L, 3) else { return reply.fail("\(name): field 'key' must be a string or nil", level: 2) }
        guard luaIsUTF8(L, 3) else { return reply.fail("\(name): field 'key' \(notText)", level: 2) }
        key = text
    }
    let headers: [String: String]?
    do {
        // Null values as "".
        let list = try luaHeaders(L, 4, function: name, argument: "field 'headers'")
        if let bad = list?.first(where: { header in header.value.map { String(validating: $0, as: UTF8.self) == nil } ?? false }) {
            return reply.fail("\(name): header '\(bad.name)' \(notText)", level: 2)
        }
        let headerBytes = list?.reduce(0) { $0 + $1.name.utf8.count + ($1.value?.count ?? 0) } ?? 0
        guard bindings.charge(items: 0, bytes: headerBytes, by: name, reply, level: 2) else { return }
        headers = list.map { Dictionary($0.map { ($0.name, $0.text ?? "") }) { $1 } }
    } catch {
        return reply.fail(error.message, level: 2)
    }
    // at: RFC 3339 text or seconds since the epoch; after/every: a duration or seconds.
    func field(_ index: Int32, _ field: String) -> Result<String?, LuaArgumentError> {
        if clua_isnoneornil(L, index) != 0 { return .success(nil) }
        switch lua_type(L, index) {
        case LUA_TSTRING: return .success(luaText(L, index))
        case LUA_TNUMBER where field != "cron" && field != "timezone":
            let seconds = clua_tonumber(L, index)
            guard seconds.isFinite, abs(seconds) < 1e11 else { return .failure(LuaArgumentError("\(name): field '\(field)' is out of range")) }
            if field == "at" { return .success(RFC3339.format(Int64((seconds * 1000).rounded()))) }
            return .success("\(Int64((seconds * 1000).rounded()))ms")
        default:
            return .failure(LuaArgumentError("\(name): field '\(field)' must be a string\(field == "cron" || field == "timezone" ? "" : " or a number of seconds")"))
        }
    }
    var values: [String?] = []
    for (index, name) in [(Int32(5), "at"), (6, "after"), (7, "every"), (8, "cron"), (9, "timezone")] {
        switch field(index, name) {
        case .success(let value): values.append(value)
        case .failure(let error): return reply.fail(error.message, level: 2)
        }
    }
    if let full = placement.admit?() { return reply.fail("\(name): \(full)", level: 2) }
    let now = RFC3339.nowMs
    let record: (Schedule, OutgoingMessage)
    do {
        guard let kind = try ScheduleRequest.kind(at: values[0], after: values[1], every: values[2], cron: values[3],
                                                  timezone: values[4], now: now) else {
            return reply.fail("\(name): give one of the fields at, after, every, cron", level: 2)
        }
        record = try placement.create(task: TaskSpec(topic: topic, message: message, key: key, headers: headers), kind: kind, now: now)
    } catch {
        return reply.fail("\(name): \(error.description)", level: 2)
    }
    guard bindings.store(record.1, .schedule(record.0), name, reply) else { return }
    let id = record.0.id
    withUnsafeMutableBytes(of: &reply.pointee.message) { buffer in
        let bytes = id.utf8.prefix(buffer.count - 1)
        buffer.copyBytes(from: bytes)
        buffer[bytes.count] = 0
    }
    reply.pointee.push_string = 1
}

/// `scheduler.cancel(id)`: writes the schedule's tombstone (as an emit
/// inside `process()`); returns true. Cancelling an unknown id does nothing.
func schedulerCancel(_ L: OpaquePointer?, _ context: UnsafeMutableRawPointer?, _ reply: UnsafeMutablePointer<clua_reply>?) {
    guard let L, let reply else { return }
    let bindings = ScriptBindings.from(context)
    guard let placement = bindings.schedules else { return reply.fail("scheduler.cancel: schedules are not available here") }
    guard lua_type(L, 1) == LUA_TSTRING, let id = luaText(L, 1), !id.isEmpty, id.utf8.count <= 200 else {
        return reply.fail("scheduler.cancel: argument 1 must be a schedule id (a string returned by scheduler.schedule)")
    }
    guard bindings.charge(bytes: id.utf8.count, by: "scheduler.cancel", reply) else { return }
    guard bindings.store(placement.cancel(id: id), .removed(id: id), "scheduler.cancel", reply, level: 1) else { return }
    reply.pointee.push_true = 1
}

extension ScriptBindings {
    /// Writes a schedule record now (outside workers) or as an emit; false
    /// (`reply` set to raise) when too many wait for the broker already.
    fileprivate func store(_ message: OutgoingMessage, _ record: ScheduleRecord, _ function: String,
                           _ reply: UnsafeMutablePointer<clua_reply>, level: Int32 = 2) -> Bool {
        guard let publish = schedules?.publish else {
            appendEmitted(message)
            return true
        }
        guard let refusal = publish(message, record) else { return true }
        reply.fail("\(function): \(refusal)", level: level)
        return false
    }
}
