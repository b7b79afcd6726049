/// One schedule: a task, when it fires, and how far it got. The value of its
/// record in the schedule topic (see `ScheduleRecord`).
///
/// The fields added after the first version are optional, so a record
/// written by an older daemon still loads (nil reads as the old behaviour)
/// and a schedule that uses none of them is written as before.
struct Schedule: Sendable, Equatable, Codable {
    /// Stable id: the record's key, what `DELETE /tasks/<id>` and `scheduler.cancel` take.
    let id: String
    /// What is published at each fire.
    var task: TaskSpec
    /// When it fires.
    var kind: ScheduleKind
    /// When it was created (ms since the epoch).
    let createdMs: Int64
    /// The next due time (ms since the epoch).
    var nextDueMs: Int64
    /// Fires acknowledged so far; a record with fewer fires than the one in
    /// memory is an older state and is ignored.
    var fires: Int64 = 0
    /// Due time of the last acknowledged fire.
    var lastFiredDueMs: Int64?
    /// Bumped by every change made through the API or a script (not by
    /// fires): the owner takes a record of a higher revision as the newer
    /// definition, whatever its `fires` (see `ScheduleMerge`). nil: 0.
    var revision: Int64?
    /// Who made it: `api` (nil) or `script` (a named schedule of generate.lua).
    var source: ScheduleSource?
    /// Paused: no regular fire until resumed (a trigger still fires).
    var paused: Bool?
    /// What a late fire does (nil: `once`).
    var catchup: CatchUpPolicy?
    /// Triggers asked for (`POST /schedules/<id>/trigger`) and fired so far;
    /// one extra fire is due at `triggerAtMs` while `triggered < triggers`.
    var triggers: Int64?
    var triggered: Int64?
    var triggerAtMs: Int64?
    /// Slots not fired on time, counted (skipped, or folded into one late fire).
    var misses: Int64?
    /// When the last fire was acknowledged, and how late it was (due to acknowledgement).
    var lastFiredAtMs: Int64?
    var lastFireDelayMs: Int64?
    /// Each fire is taken up to this much after its due time, by an amount
    /// fixed per slot (see `jitterOffset`).
    var jitterMs: Int64?
    /// A window for a recurring schedule: no slot before `startMs`; done
    /// (removed) once its next slot would be after `endMs`.
    var startMs: Int64?
    var endMs: Int64?
    /// Done (removed) after this many regular fires (triggers not counted).
    var limit: Int64?

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

    var isPaused: Bool { paused ?? false }
    var policy: CatchUpPolicy { catchup ?? .once }

    /// A trigger is waiting to fire.
    var triggerPending: Bool { (triggered ?? 0) < (triggers ?? 0) }

    /// When the timer should take it next: a pending trigger, else the next
    /// due time unless paused; nil when nothing is to fire.
    var effectiveDueMs: Int64? {
        let regular = isPaused ? nil : nextDueMs + jitterOffset(nextDueMs)
        guard triggerPending, let at = triggerAtMs else { return regular }
        return min(at, regular ?? .max)
    }

    /// The state after the fire of `due` was acknowledged (taken by the timer
    /// at `now`, acknowledged at `ackedAt`); nil when a one-shot is done (its
    /// record is then tombstoned). `misses`: slots folded into this fire.
    func afterFire(due: Int64, now: Int64, ackedAt: Int64? = nil) -> Schedule? {
        let plan = CatchUp.plan(kind: kind, policy: policy, due: due, now: now)
        guard let next = plan.next, !isOver(next: next, regularFires: fires - (triggered ?? 0) + 1) else { return nil }
        var fired = self
        fired.fires += 1
        fired.lastFiredDueMs = due
        fired.nextDueMs = next
        fired.noteFire(due: due + jitterOffset(due), ackedAt: ackedAt)
        if plan.missed > 0 { fired.misses = (misses ?? 0) + Int64(plan.missed) }
        return fired
    }

    /// The state after an extra fire (a trigger) was acknowledged: the
    /// cadence is unchanged.
    func afterTrigger(due: Int64, ackedAt: Int64?) -> Schedule {
        var fired = self
        fired.fires += 1
        fired.triggered = (triggered ?? 0) + 1
        if !fired.triggerPending { fired.triggerAtMs = nil }
        fired.noteFire(due: due, ackedAt: ackedAt)
        return fired
    }

    /// The state after a late fire was dropped by the `skip` policy (taken
    /// at `now`): counted as missed with the slots after it, the schedule
    /// goes on at its next slot; nil for a one-shot (it is removed).
    func afterSkip(due: Int64, now: Int64) -> Schedule? {
        let plan = CatchUp.plan(kind: kind, policy: .skip, due: due, now: now)
        guard let next = plan.next, !isOver(next: next, regularFires: fires - (triggered ?? 0)) else { return nil }
        var skipped = self
        skipped.nextDueMs = next
        skipped.misses = (misses ?? 0) + 1 + Int64(plan.missed)
        return skipped
    }

    /// How far the owner got with it: fires, slots missed and triggers
    /// fired only grow, so of two states of one revision the one with more
    /// progress is the newer.
    var progress: Int64 { fires + (misses ?? 0) }

    /// Done: `next` is past the window's end, or the limit of regular fires is reached.
    func isOver(next: Int64, regularFires: Int64) -> Bool {
        if let endMs, next > endMs { return true }
        if let limit, regularFires >= limit { return true }
        return false
    }

    /// How long after slot `due` the timer takes it: 0 to `jitterMs`, a hash
    /// of the id and the slot (the same on every daemon and after a restart).
    func jitterOffset(_ due: Int64) -> Int64 {
        guard let jitterMs, jitterMs > 0 else { return 0 }
        var hash: UInt64 = 14_695_981_039_346_656_037
        for byte in id.utf8 + withUnsafeBytes(of: due.littleEndian, Array.init) {
            hash ^= UInt64(byte)
            hash = hash &* 1_099_511_628_211
        }
        return Int64(hash % UInt64(jitterMs + 1))
    }

    /// The first slot of a recurring schedule at or after its window's start.
    mutating func moveIntoWindow() {
        guard kind.isRecurring, let startMs, nextDueMs < startMs, let next = kind.nextDue(after: startMs - 1, now: startMs - 1) else { return }
        nextDueMs = next
    }

    private mutating func noteFire(due: Int64, ackedAt: Int64?) {
        guard let ackedAt else { return }
        lastFiredAtMs = ackedAt
        lastFireDelayMs = max(ackedAt - due, 0)
    }
}

/// Where a schedule was declared.
enum ScheduleSource: String, Sendable, Codable, CaseIterable {
    /// `POST /tasks/generate`, `PUT /schedules/<id>`, `scheduler.schedule`.
    case api
    /// The `schedules` table of generate.lua (applied at start and reload).
    case script
}
