import CLua
import Foundation

/// The fields `scheduler.schedule{...}` takes, in the order the prelude
/// passes them to `scheduler._schedule`: the API's task and timing fields
/// (`TaskRequest`). The API's `id`, policy fields and `once` are not among
/// them: a script's schedule is a new one, stored as one record (inside
/// `process()`, an emit), which cannot read back an existing schedule.
enum ScriptScheduleFields {
    static let names = ["topic", "message", "key", "headers", "at", "after", "every", "cron", "timezone"]
}

extension SchedulePlacement {
    /// `scheduler.schedule` and `scheduler.cancel` in every script state,
    /// writing to `placement` (as emits in worker states); nil: they raise
    /// "schedules are not available here".
    static func scriptFeature(_ placement: SchedulePlacement?) -> ScriptFeature {
        ScriptFeature(bindings: [.init(name: "_schedule", function: schedulerSchedule), .init(name: "_cancel", function: schedulerCancel)],
                      prelude: schedulePrelude, context: placement, workerContext: placement?.forWorkers)
    }

    /// Wraps the raw bindings: `scheduler.schedule{...}` checks the table's
    /// fields and passes them in `ScriptScheduleFields` order.
    private static let schedulePrelude = """
        local type, error = type, error
        local raw_schedule, pairs, tostring = scheduler._schedule, pairs, tostring
        local schedule_fields = {\(ScriptScheduleFields.names.map { "\($0) = true" }.joined(separator: ", "))}
        scheduler.schedule = function(spec)
          if type(spec) ~= "table" then
            error("scheduler.schedule: expects a table {topic=, message=, key=?, headers=?, at=|after=|every=|cron=}", 2)
          end
          for name in pairs(spec) do
            if not schedule_fields[name] then
              error("scheduler.schedule: unknown field '" .. tostring(name) .. "' (allowed: \(ScriptScheduleFields.names.joined(separator: ", ")))", 2)
            end
          end
          return raw_schedule(\(ScriptScheduleFields.names.map { "spec.\($0)" }.joined(separator: ", ")))
        end
        scheduler.cancel = scheduler._cancel
        scheduler._schedule, scheduler._cancel = nil, nil
        """
}

/// `scheduler._schedule(topic, message, key, headers, at, after, every, cron, timezone)`,
/// behind `scheduler.schedule{...}` (the prelude checks the table's fields):
/// returns the new schedule's id. The arguments become the fields of a
/// `POST /tasks/generate` body and go through the same parser, so a field
/// is refused with the API's message. Outside `process()` the record is
/// written at once; inside, it travels as an emit of the message being
/// processed, so it is stored before that message's offset is committed.
func schedulerSchedule(_ L: OpaquePointer?, _ context: UnsafeMutableRawPointer?, _ reply: UnsafeMutablePointer<clua_reply>?) {
    guard let L, let reply else { return }
    let bindings = ScriptBindings.from(context)
    let name = "scheduler.schedule"
    guard let placement = bindings.context(SchedulePlacement.self) else { return reply.fail("\(name): schedules are not available here", level: 2) }
    let posted: TaskRequest.Posted
    do {
        // nil: over the call's emit budget, already in `reply`.
        guard let fields = try scheduleFields(L, bindings, reply) else { return }
        posted = try TaskRequest.parse(fields: fields)
    } catch let error as LuaArgumentError {
        return reply.fail(error.message, level: 2)
    } catch let error as APIError {
        return reply.fail("\(name): \(error.message)", level: 2)
    } catch {
        return reply.fail("\(name): \(error)", level: 2)
    }
    guard let kind = posted.schedule else { return reply.fail("\(name): give one of the fields at, after, every, cron", level: 2) }
    if let full = placement.admit?() { return reply.fail("\(name): \(full)", level: 2) }
    let record: (Schedule, OutgoingMessage)
    do {
        record = try placement.create(task: posted.task, kind: kind, now: RFC3339.nowMs)
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

/// A Lua value of a type no field takes; the parser names the field ("must be a string").
private struct NotText {}

/// `scheduler._schedule`'s arguments as the fields of a JSON body. What only
/// scripts need is settled here: the emit budget is charged before the
/// strings are copied, Lua numbers become text (`at`: seconds since the
/// epoch; `after`, `every`: seconds), and bytes that are not UTF-8 are
/// refused (a schedule stores its task as text; JSON cannot carry them).
private func scheduleFields(_ L: OpaquePointer, _ bindings: ScriptBindings,
                            _ reply: UnsafeMutablePointer<clua_reply>) throws(LuaArgumentError) -> [String: Any]? {
    let name = "scheduler.schedule"
    let topicLength = lua_type(L, 1) == LUA_TSTRING ? luaLength(L, 1) : 0
    guard bindings.charge(bytes: topicLength + luaLength(L, 2) + luaLength(L, 3), by: name, reply, level: 2) else { return nil }
    var fields: [String: Any] = [:]
    // A topic is a name: a Lua number is not one.
    if clua_isnoneornil(L, 1) == 0 { fields["topic"] = lua_type(L, 1) == LUA_TSTRING ? (luaText(L, 1) ?? "") as Any : NotText() }
    for (index, field) in [(Int32(2), "message"), (3, "key")] where clua_isnoneornil(L, index) == 0 {
        guard let text = luaText(L, index) else { fields[field] = NotText(); continue }
        guard luaIsUTF8(L, index) else { throw LuaArgumentError("\(name): field '\(field)' \(notUTF8)") }
        fields[field] = text
    }
    guard let headers = try scheduleHeaders(L, bindings, reply) else { return nil }
    fields["headers"] = headers
    for (offset, field) in ScheduleRequest.fields.enumerated() {
        fields[field] = try timingField(L, Int32(5 + offset), field)
    }
    return fields
}

private let notUTF8 = "must be UTF-8 text (a schedule stores its task as text; scheduler.emit takes any bytes)"

/// Argument 4 as a JSON object of strings (a null value: ""), NSNull when
/// absent, nil when over the emit budget. Keys and values must be strings
/// (`false`: a null value), as `scheduler.emit` takes them.
private func scheduleHeaders(_ L: OpaquePointer, _ bindings: ScriptBindings,
                             _ reply: UnsafeMutablePointer<clua_reply>) throws(LuaArgumentError) -> Any? {
    let name = "scheduler.schedule"
    // Not a table: the parser names the field as it does for a JSON body.
    if clua_isnoneornil(L, 4) == 0 && clua_istable(L, 4) == 0 { return NotText() }
    guard let list = try luaHeaders(L, 4, function: name, argument: "field 'headers'") else { return NSNull() }
    if let bad = list.first(where: { header in header.value.map { String(validating: $0, as: UTF8.self) == nil } ?? false }) {
        throw LuaArgumentError("\(name): header '\(bad.name)' \(notUTF8)")
    }
    let bytes = list.reduce(0) { $0 + $1.name.utf8.count + ($1.value?.count ?? 0) }
    guard bindings.charge(items: 0, bytes: bytes, by: name, reply, level: 2) else { return nil }
    return Dictionary(list.map { ($0.name, $0.text ?? "") }) { $1 } as [String: Any]
}

/// A timing field: text as it is; for `at`, `after` and `every` a number of
/// seconds becomes the text the API takes (RFC 3339, or milliseconds).
private func timingField(_ L: OpaquePointer, _ index: Int32, _ field: String) throws(LuaArgumentError) -> Any {
    let name = "scheduler.schedule"
    let takesSeconds = field != "cron" && field != "timezone"
    if clua_isnoneornil(L, index) != 0 { return NSNull() }
    switch lua_type(L, index) {
    case LUA_TSTRING: return luaText(L, index) ?? ""
    case LUA_TNUMBER where takesSeconds:
        let seconds = clua_tonumber(L, index)
        guard seconds.isFinite, abs(seconds) < 1e11 else { throw LuaArgumentError("\(name): field '\(field)' is out of range") }
        let ms = Int64((seconds * 1000).rounded())
        return field == "at" ? RFC3339.format(ms) : "\(ms)ms"
    default:
        if !takesSeconds { return NotText() }
        throw LuaArgumentError("\(name): field '\(field)' must be a string or a number of seconds")
    }
}

/// `scheduler.cancel(id)`: writes the schedule's tombstone (as an emit
/// inside `process()`); returns true. Cancelling an unknown id does nothing.
func schedulerCancel(_ L: OpaquePointer?, _ context: UnsafeMutableRawPointer?, _ reply: UnsafeMutablePointer<clua_reply>?) {
    guard let L, let reply else { return }
    let bindings = ScriptBindings.from(context)
    guard let placement = bindings.context(SchedulePlacement.self) else { return reply.fail("scheduler.cancel: schedules are not available here") }
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
        guard let publish = context(SchedulePlacement.self)?.publish else {
            appendEmitted(message)
            return true
        }
        guard let refusal = publish(message, record) else { return true }
        reply.fail("\(function): \(refusal)", level: level)
        return false
    }
}
