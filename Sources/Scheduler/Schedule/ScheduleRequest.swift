/// Reads the schedule fields of a task (`at`, `after`, `every`, `cron` and
/// `timezone`) as the API and `scheduler.schedule` take them.
enum ScheduleRequest {
    /// The fields, in the order error messages list them.
    static let fields = ["at", "after", "every", "cron", "timezone"]
    /// Shortest `every`: a tighter loop is a busy loop, not a schedule.
    static let minimumEveryMs: Int64 = 100

    /// The `catchup` field: `skip`, `once` or `all` (nil when absent).
    static func catchup(_ text: String?) throws(ScheduleFieldError) -> CatchUpPolicy? {
        guard let text else { return nil }
        guard let policy = CatchUpPolicy(rawValue: text) else {
            throw ScheduleFieldError("catchup", "must be one of skip, once, all (got '\(text.prefix(64))')")
        }
        return policy
    }

    /// The schedule kind the fields ask for, or nil when none of `at`,
    /// `after`, `every`, `cron` is given. Throws naming the field at fault.
    static func kind(at: String?, after: String?, every: String?, cron: String?, timezone: String?,
                     now: Int64) throws(ScheduleFieldError) -> ScheduleKind? {
        let given = [("at", at), ("after", after), ("every", every), ("cron", cron)].filter { $0.1 != nil }.map(\.0)
        if given.count > 1 {
            throw ScheduleFieldError(given[1], "give only one of at, after, every, cron (got \(given.joined(separator: ", ")))")
        }
        if timezone != nil && cron == nil {
            throw ScheduleFieldError("timezone", "only applies to 'cron'")
        }
        if let at { return .at(try RFC3339.parse(at, field: "at")) }
        if let after {
            let ms = try ScheduleDuration.parse(after, field: "after")
            return .after(ms: ms, due: now + ms)
        }
        if let every {
            let ms = try ScheduleDuration.parse(every, field: "every")
            guard ms >= minimumEveryMs else { throw ScheduleFieldError("every", "must be at least \(minimumEveryMs)ms") }
            return .every(ms: ms, anchor: now)
        }
        if let cron { return .cron(try CronSchedule(cron, timezone: timezone)) }
        return nil
    }
}

/// A schedule's policies as a request gives them (all optional).
struct SchedulePolicy: Sendable, Equatable {
    var catchup: CatchUpPolicy?
    var jitterMs: Int64?
    var startMs: Int64?
    var endMs: Int64?
    var limit: Int64?

    var isEmpty: Bool { self == SchedulePolicy() }

    /// Longest `jitter`.
    static let maxJitterMs: Int64 = 86_400_000

    /// Reads `catchup`, `jitter` (a duration), `start`/`end` (RFC 3339, for
    /// `every` and `cron`) and `limit` (fires, at least 1); throws naming the field.
    init(catchup: String?, jitter: String?, start: String?, end: String?, limit: Int64?, kind: ScheduleKind) throws(ScheduleFieldError) {
        self.catchup = try ScheduleRequest.catchup(catchup)
        if let jitter {
            let ms = try ScheduleDuration.parse(jitter, field: "jitter")
            guard ms <= Self.maxJitterMs else { throw ScheduleFieldError("jitter", "must be at most 1d") }
            jitterMs = ms
        }
        for (field, given) in [("start", start), ("end", end), ("limit", limit.map(String.init))] where given != nil && !kind.isRecurring {
            throw ScheduleFieldError(field, "applies to 'every' and 'cron' (a one-shot fires once)")
        }
        if let start { startMs = try RFC3339.parse(start, field: "start") }
        if let end { endMs = try RFC3339.parse(end, field: "end") }
        if let startMs, let endMs, endMs <= startMs { throw ScheduleFieldError("end", "must be after 'start'") }
        if let limit {
            guard limit >= 1 else { throw ScheduleFieldError("limit", "must be a whole number of fires, at least 1") }
            self.limit = limit
        }
    }

    init() {}
}

extension Schedule {
    /// Its policies, as `SchedulePolicy` (what `put` compares and sets).
    var policyFields: SchedulePolicy {
        get {
            var policy = SchedulePolicy()
            (policy.catchup, policy.jitterMs, policy.startMs, policy.endMs, policy.limit) = (catchup, jitterMs, startMs, endMs, limit)
            return policy
        }
        set {
            (catchup, jitterMs, startMs, endMs, limit) = (newValue.catchup, newValue.jitterMs, newValue.startMs, newValue.endMs, newValue.limit)
        }
    }
}
