import Foundation

/// Reads the body of `POST /tasks/generate`:
/// `{"topic": "E", "message": "EE", "key": "k"?, "headers": {"name": "value"}?, "once": true?}`,
/// or with one schedule field: `"at"` (RFC 3339), `"after"`, `"every"` (durations
/// such as `"90s"`) or `"cron"` (with an optional `"timezone"`), and then
/// optionally `"id"` (a client-chosen schedule id: creates or changes that
/// schedule) and `"catchup"` (`skip`, `once`, `all`).
enum TaskRequest {
    static let fields: Set<String> = ["topic", "message", "key", "headers", "once", "at", "after", "every", "cron", "timezone", "id", "catchup",
                                      "jitter", "start", "end", "limit"]

    /// A parsed body: the task, and whether it is published once instead of
    /// joining the pool, or when it is scheduled.
    struct Posted: Sendable, Equatable {
        var task: TaskSpec
        var once: Bool
        var schedule: ScheduleKind? = nil
        /// A client-chosen schedule id.
        var id: String? = nil
        var policy = SchedulePolicy()
    }

    /// The task, or an `APIError` (400) saying what is wrong with the body.
    /// (JSONSerialization: a JSONDecoder into a struct measured slower, 9% of a
    /// post's CPU against 6%.)
    static func parse(_ body: Data) throws(APIError) -> Posted {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed])
        } catch {
            throw APIError(.badRequest, body.isEmpty ? "request body is empty; expected a JSON object with topic and message"
                                                     : "request body is not valid JSON")
        }
        guard let fields = object as? [String: Any] else {
            throw APIError(.badRequest, "request body must be a JSON object with topic and message")
        }
        return try parse(fields: fields)
    }

    /// The task from its fields, as a JSON object decodes them (strings,
    /// `NSNumber`s, `NSNull`, nested `[String: Any]`). `scheduler.schedule`
    /// in scripts hands its table here too, so both accept a field alike and
    /// refuse it with the same message.
    static func parse(fields: [String: Any]) throws(APIError) -> Posted {
        let unknown = Set(fields.keys).subtracting(Self.fields).sorted()
        if !unknown.isEmpty {
            throw APIError(.badRequest, "unknown field(s): \(unknown.map { "'\($0.prefix(64))'" }.joined(separator: ", ")); allowed: topic, message, key, headers, once, at, after, every, cron, timezone, id, catchup, jitter, start, end, limit")
        }
        let task = try taskSpec(fields)
        let once = try flag(fields, "once")
        if let problem = TopicName.problem(task.topic) { throw APIError(.badRequest, problem) }
        let schedule = try scheduleKind(fields)
        if schedule != nil && once { throw APIError(.badRequest, "field 'once' cannot be combined with a schedule (at, after, every, cron)") }
        let (id, policy) = try scheduleOptions(fields, for: schedule)
        return Posted(task: task, once: once, schedule: schedule, id: id, policy: policy)
    }

    private static func taskSpec(_ fields: [String: Any]) throws(APIError) -> TaskSpec {
        let topic = try string(fields, "topic", required: true)!
        let message = try string(fields, "message", required: true)!
        let key = try string(fields, "key", required: false)
        var headers: [String: String]?
        if let raw = fields["headers"], !(raw is NSNull) {
            guard let map = raw as? [String: Any] else {
                throw APIError(.badRequest, "field 'headers' must be an object of string values")
            }
            var result: [String: String] = [:]
            for (name, value) in map {
                guard let text = value as? String, !isNumber(value) else {
                    throw APIError(.badRequest, "header '\(name.prefix(64))' must have a string value")
                }
                result[name] = text
            }
            headers = result
        }
        return TaskSpec(topic: topic, message: message, key: key, headers: headers)
    }

    /// A boolean field; absent or null is false.
    private static func flag(_ fields: [String: Any], _ name: String) throws(APIError) -> Bool {
        guard let raw = fields[name], !(raw is NSNull) else { return false }
        // JSON true/false arrive as boolean NSNumbers (type "c"); 1 and 0 are refused.
        guard let number = raw as? NSNumber, String(cString: number.objCType) == "c" else {
            throw APIError(.badRequest, "field '\(name)' must be true or false")
        }
        return number.boolValue
    }

    /// The schedule `at`, `after`, `every` or `cron` (with `timezone`) ask for; nil for none.
    private static func scheduleKind(_ fields: [String: Any]) throws(APIError) -> ScheduleKind? {
        var timing: [String?] = []
        for field in ScheduleRequest.fields { timing.append(try string(fields, field, required: false)) }
        do {
            return try ScheduleRequest.kind(at: timing[0], after: timing[1], every: timing[2], cron: timing[3], timezone: timing[4],
                                            now: RFC3339.nowMs)
        } catch {
            throw APIError(.badRequest, error.description)
        }
    }

    /// `id` and the policy fields (`catchup`, `jitter`, `start`, `end`,
    /// `limit`), which only a schedule takes.
    private static func scheduleOptions(_ fields: [String: Any], for schedule: ScheduleKind?) throws(APIError) -> (String?, SchedulePolicy) {
        let id = try string(fields, "id", required: false)
        var named: [String?] = []
        for field in ["catchup", "jitter", "start", "end"] { named.append(try string(fields, field, required: false)) }
        let limit = try wholeNumber(fields, "limit")
        if schedule == nil, let field = id != nil ? "id" : zip(["catchup", "jitter", "start", "end"], named).first(where: { $0.1 != nil })?.0 ?? (limit != nil ? "limit" : nil) {
            throw APIError(.badRequest, "field '\(field)' applies to a schedule: give one of at, after, every, cron")
        }
        if let id, let problem = ScheduleStore.problem(withID: id) { throw APIError(.badRequest, problem) }
        guard let schedule else { return (id, SchedulePolicy()) }
        do {
            return (id, try SchedulePolicy(catchup: named[0], jitter: named[1], start: named[2], end: named[3], limit: limit, kind: schedule))
        } catch {
            throw APIError(.badRequest, error.description)
        }
    }

    private static func wholeNumber(_ fields: [String: Any], _ name: String) throws(APIError) -> Int64? {
        guard let raw = fields[name], !(raw is NSNull) else { return nil }
        // A JSON integer (not a boolean, not a fraction).
        guard let number = raw as? NSNumber, String(cString: number.objCType) != "c", number.doubleValue == Double(number.int64Value) else {
            throw APIError(.badRequest, "field '\(name)' must be a whole number")
        }
        return number.int64Value
    }

    private static func string(_ fields: [String: Any], _ name: String, required: Bool) throws(APIError) -> String? {
        guard let raw = fields[name], !(raw is NSNull) else {
            if required { throw APIError(.badRequest, "missing field '\(name)'") }
            return nil
        }
        guard let text = raw as? String, !isNumber(raw) else {
            throw APIError(.badRequest, "field '\(name)' must be a string")
        }
        return text
    }

    /// Foundation may bridge numbers to strings on some platforms; refuse them explicitly.
    private static func isNumber(_ value: Any) -> Bool {
        value is NSNumber && !(value is String)
    }
}
