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
        let unknown = Set(fields.keys).subtracting(Self.fields).sorted()
        if !unknown.isEmpty {
            throw APIError(.badRequest, "unknown field(s): \(unknown.map { "'\($0.prefix(64))'" }.joined(separator: ", ")); allowed: topic, message, key, headers, once, at, after, every, cron, timezone, id, catchup, jitter, start, end, limit")
        }
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
        var once = false
        if let raw = fields["once"], !(raw is NSNull) {
            // JSON true/false arrive as boolean NSNumbers (type "c"); 1 and 0 are refused.
            guard let number = raw as? NSNumber, String(cString: number.objCType) == "c" else {
                throw APIError(.badRequest, "field 'once' must be true or false")
            }
            once = number.boolValue
        }
        if let problem = TopicName.problem(topic) { throw APIError(.badRequest, problem) }
        let at = try string(fields, "at", required: false)
        let after = try string(fields, "after", required: false)
        let every = try string(fields, "every", required: false)
        let cron = try string(fields, "cron", required: false)
        let timezone = try string(fields, "timezone", required: false)
        let schedule: ScheduleKind?
        do {
            schedule = try ScheduleRequest.kind(at: at, after: after, every: every, cron: cron, timezone: timezone, now: RFC3339.nowMs)
        } catch {
            throw APIError(.badRequest, error.description)
        }
        if schedule != nil && once { throw APIError(.badRequest, "field 'once' cannot be combined with a schedule (at, after, every, cron)") }
        let id = try string(fields, "id", required: false)
        var named: [String?] = []
        for field in ["catchup", "jitter", "start", "end"] { named.append(try string(fields, field, required: false)) }
        var limit: Int64?
        if let raw = fields["limit"], !(raw is NSNull) {
            // A JSON integer (not a boolean, not a fraction).
            guard let number = raw as? NSNumber, String(cString: number.objCType) != "c", number.doubleValue == Double(number.int64Value) else {
                throw APIError(.badRequest, "field 'limit' must be a whole number")
            }
            limit = number.int64Value
        }
        if schedule == nil, let field = id != nil ? "id" : zip(["catchup", "jitter", "start", "end"], named).first(where: { $0.1 != nil })?.0 ?? (limit != nil ? "limit" : nil) {
            throw APIError(.badRequest, "field '\(field)' applies to a schedule: give one of at, after, every, cron")
        }
        if let id, let problem = ScheduleStore.problem(withID: id) { throw APIError(.badRequest, problem) }
        var policy = SchedulePolicy()
        if let schedule {
            do {
                policy = try SchedulePolicy(catchup: named[0], jitter: named[1], start: named[2], end: named[3], limit: limit, kind: schedule)
            } catch {
                throw APIError(.badRequest, error.description)
            }
        }
        return Posted(task: TaskSpec(topic: topic, message: message, key: key, headers: headers), once: once, schedule: schedule,
                      id: id, policy: policy)
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
