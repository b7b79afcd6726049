/// When a schedule fires.
enum ScheduleKind: Sendable, Equatable, Codable {
    /// Once, at an instant (ms since the epoch).
    case at(Int64)
    /// Once, `ms` after it was created; `due` is that instant.
    case after(ms: Int64, due: Int64)
    /// Every `ms`, at `anchor + k * ms` (k >= 1; `anchor` is the creation time).
    case every(ms: Int64, anchor: Int64)
    /// At the times a cron expression names, in its time zone.
    case cron(CronSchedule)

    /// `at`, `after`, `every` or `cron` (the metrics label and the API field).
    var name: String {
        switch self {
        case .at: "at"
        case .after: "after"
        case .every: "every"
        case .cron: "cron"
        }
    }

    /// Fires more than once.
    var isRecurring: Bool {
        switch self {
        case .at, .after: false
        case .every, .cron: true
        }
    }

    /// The schedule as the API and `GET /tasks` show it, e.g. `{"every": "30s"}`.
    var fields: [String: String] {
        switch self {
        case .at(let ms): ["at": RFC3339.format(ms)]
        case .after(let ms, _): ["after": ScheduleDuration.format(ms)]
        case .every(let ms, _): ["every": ScheduleDuration.format(ms)]
        case .cron(let cron): ["cron": cron.expression.source, "timezone": cron.timezone]
        }
    }

    /// The first due time for a schedule created at `now`.
    func firstDue(now: Int64) -> Int64? {
        switch self {
        case .at(let ms): ms
        case .after(_, let due): due
        // The first slot after now (a schedule made now: one interval later).
        case .every(let ms, let anchor): anchor + max(WallClock.floorDiv(now - anchor, ms) + 1, 1) * ms
        case .cron(let cron): cron.next(after: now)
        }
    }

    /// The due time after a fire of `due` acknowledged at `now`: nil for a
    /// one-shot. A recurring schedule fires once for a whole missed period,
    /// so the next due time is the first one after both `due` and `now`,
    /// on the schedule's own cadence.
    func nextDue(after due: Int64, now: Int64) -> Int64? {
        let from = max(due, now)
        switch self {
        case .at, .after:
            return nil
        case .every(let ms, let anchor):
            let steps = WallClock.floorDiv(from - anchor, ms) + 1
            return anchor + max(steps, 1) * ms
        case .cron(let cron):
            return cron.next(after: from)
        }
    }
}
