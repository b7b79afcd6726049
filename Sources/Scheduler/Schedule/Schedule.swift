/// One schedule: a task, when it fires, and how far it got. The value of its
/// record in the schedule topic (see `ScheduleRecord`).
struct Schedule: Sendable, Equatable, Codable {
    /// Stable id: the record's key, what `DELETE /tasks/<id>` and `scheduler.cancel` take.
    let id: String
    /// What is published at each fire.
    let task: TaskSpec
    /// When it fires.
    let kind: ScheduleKind
    /// When it was created (ms since the epoch).
    let createdMs: Int64
    /// The next due time (ms since the epoch).
    var nextDueMs: Int64
    /// Fires acknowledged so far; a record with fewer fires than the one in
    /// memory is an older state and is ignored.
    var fires: Int64 = 0
    /// Due time of the last acknowledged fire.
    var lastFiredDueMs: Int64?

    /// A new schedule of `kind` for `task`, created at `now`; throws naming
    /// the field when it would never fire.
    init(id: String, task: TaskSpec, kind: ScheduleKind, now: Int64) throws(ScheduleFieldError) {
        guard let first = kind.firstDue(now: now) else {
            throw ScheduleFieldError(kind.name, "never fires within the next \(CronExpression.horizonDays / 366) years")
        }
        self.id = id
        self.task = task
        self.kind = kind
        self.createdMs = now
        self.nextDueMs = first
    }

    /// The state after the fire of `due` was acknowledged at `now`; nil when
    /// a one-shot is done (its record is then tombstoned).
    func afterFire(due: Int64, now: Int64) -> Schedule? {
        guard let next = kind.nextDue(after: due, now: now) else { return nil }
        var fired = self
        fired.fires += 1
        fired.lastFiredDueMs = due
        fired.nextDueMs = next
        return fired
    }
}
