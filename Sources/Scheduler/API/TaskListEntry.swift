/// An entry of `GET /tasks`: a pool task in the seed's shape (`topic`,
/// `message`, `key` and `headers` only when set) plus its stable `id`, or a
/// schedule, which adds its `id`, its schedule field(s), `next_due`, `fires`
/// and `owner` (the daemon firing it, when one holds its partition).
struct TaskListEntry: Encodable, Sendable, Equatable {
    let topic: String
    let message: String
    let key: String?
    let headers: [String: String]?
    let id: String?
    let at: String?
    let after: String?
    let every: String?
    let cron: String?
    let timezone: String?
    let next_due: String?
    let fires: Int64?
    let owner: String?

    /// A pool task.
    init(pool entry: TaskPool.Entry) {
        topic = entry.task.topic
        message = entry.task.message
        key = entry.task.key
        headers = entry.task.headers
        id = entry.id
        (at, after, every, cron, timezone, next_due, fires, owner) = (nil, nil, nil, nil, nil, nil, nil, nil)
    }

    /// A schedule, fired by daemon `owner`.
    init(schedule: Schedule, owner: String? = nil) {
        topic = schedule.task.topic
        message = schedule.task.message
        key = schedule.task.key
        headers = schedule.task.headers
        id = schedule.id
        let fields = schedule.kind.fields
        (at, after, every, cron, timezone) = (fields["at"], fields["after"], fields["every"], fields["cron"], fields["timezone"])
        next_due = RFC3339.format(schedule.nextDueMs)
        fires = schedule.fires
        self.owner = owner
    }
}

/// The answer to a scheduled `POST /tasks/generate`: the schedule's id and
/// its next due time (RFC 3339, UTC), once its record is stored.
struct ScheduledView: Encodable, Sendable {
    let id: String
    let next_due: String
    let kind: String
}
