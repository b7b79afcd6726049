import Foundation

/// Schedules named by their id and changed in place: client-chosen ids,
/// `PUT /schedules/<id>`, pause, resume, trigger, and the named schedules of
/// generate.lua. Every change is a full record of the schedule with a higher
/// `revision`, written from this daemon's freshest view of it (its own table
/// for a partition it fires, else its catalog) and acknowledged before the
/// caller hears back; the owner takes it when it reads it (about a fetch,
/// ~100 ms), keeping its own state if it fired meanwhile (`ScheduleMerge`).
extension ScheduleStore {
    /// What a schedule is asked to be: its task, when it fires, its policy, who declared it.
    struct Definition: Sendable, Equatable {
        var task: TaskSpec
        var kind: ScheduleKind
        var policy = SchedulePolicy()
        var source: ScheduleSource = .api

        /// `schedule` already is this: the same task, timing (as the API
        /// shows it: an `every` keeps its grid, an `after` its due time),
        /// policy and source.
        func matches(_ schedule: Schedule) -> Bool {
            schedule.task == task && schedule.kind.fields == kind.fields && schedule.policyFields == policy
                && (schedule.source ?? .api) == source
        }
    }

    /// Longest client-chosen id, in bytes.
    static let maxIDBytes = 128

    /// Why `id` cannot name a schedule, or nil.
    static func problem(withID id: String) -> String? {
        if id.isEmpty || id.utf8.count > maxIDBytes { return "field 'id' must be 1 to \(maxIDBytes) bytes" }
        let allowed = id.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: ":")
        }
        return allowed ? nil : "field 'id' may hold only letters, digits and - _ . : (got '\(id.prefix(64))')"
    }

    /// Schedule `id` as this daemon knows it: its own table's state for a
    /// partition it holds and read, else the catalog's. nil when unknown.
    func current(id: String) -> Listed? {
        let partition = ScheduleRecord.partition(of: id, partitions: placement.partitions)
        let owned = book.read { table -> Schedule?? in
            guard table.partitions[partition] == .live else { return nil }
            return .some(table.entries[id]?.schedule)
        }
        if let owned { return owned.map { Listed(schedule: $0, partition: partition, local: true) } }
        return catalog.withLock { $0.schedule(id: id) }.map { Listed(schedule: $0.schedule, partition: $0.partition, local: false) }
    }

    /// `current(id:)`, but an id not found while the catalog is still
    /// loading (and this daemon does not fire its partition) is `.loading`.
    func known(id: String) throws(ScheduleError) -> Listed? {
        if let listed = current(id: id) { return listed }
        let partition = ScheduleRecord.partition(of: id, partitions: placement.partitions)
        let owned = book.read { $0.partitions[partition] == .live }
        if !owned && !catalog.withLock({ $0.isLive }) { throw .loading }
        return nil
    }

    /// Creates schedule `id`, or changes it to `definition` in place (its
    /// fires and its cadence kept when the timing is the same). Posting the
    /// same definition again writes nothing: `created` false, `changed` false.
    func put(id: String, _ definition: Definition) async throws(ScheduleError) -> (schedule: Schedule, created: Bool, changed: Bool) {
        if let problem = Self.problem(withID: id) { throw .invalid(problem) }
        if let problem = publisher.problem(with: definition.task) { throw .invalid(problem) }
        let now = RFC3339.nowMs
        let base = try known(id: id)?.schedule
        var reserved = false
        defer { if reserved { releaseNew() } }
        var schedule: Schedule
        if let base {
            if definition.matches(base) { return (base, false, false) }
            schedule = base
            schedule.task = definition.task
            if base.kind.fields != definition.kind.fields {
                guard let first = definition.kind.firstDue(now: now) else {
                    throw .invalid("field '\(definition.kind.name)': never fires within the next \(CronExpression.horizonDays / 366) years")
                }
                schedule.kind = definition.kind
                schedule.nextDueMs = first
            }
        } else {
            // max_schedules counts only new schedules, reserved as create() does.
            try reserveNew()
            reserved = true
            do {
                schedule = try Schedule(id: id, task: definition.task, kind: definition.kind, now: now)
            } catch {
                throw .invalid(error.description)
            }
        }
        schedule.policyFields = definition.policy
        schedule.moveIntoWindow()
        if let end = schedule.endMs, schedule.nextDueMs > end {
            throw .invalid("field 'end': the schedule's next slot (\(RFC3339.format(schedule.nextDueMs))) is after it")
        }
        schedule.source = definition.source == .api ? nil : definition.source
        schedule.revision = Self.nextRevision(after: base, now: now)
        try await store(schedule)
        if base == nil { metrics.counter(MetricName.schedulesCreated, [("kind", definition.kind.name)]).increment() }
        logger.info(base == nil ? "schedule stored" : "schedule changed",
                    metadata: [LogKey.schedule: "\(id)", LogKey.topic: "\(definition.task.topic)", LogKey.due: "\(RFC3339.format(schedule.nextDueMs))"])
        return (schedule, base == nil, true)
    }

    /// What pause, resume and trigger do to a schedule.
    enum Control: String, Sendable, CaseIterable {
        /// No regular fire until resumed (a trigger still fires).
        case pause
        /// Fires again from its next slot after now: slots that passed while
        /// paused are not missed, they were not asked for.
        case resume
        /// One extra fire now; the cadence does not move.
        case trigger
    }

    /// Applies `control` to schedule `id`; pausing a paused schedule (or
    /// resuming a running one) writes nothing.
    func control(id: String, _ control: Control) async throws(ScheduleError) -> Schedule {
        guard let base = try known(id: id)?.schedule else { throw .noSuchSchedule(id: id) }
        let now = RFC3339.nowMs
        var schedule = base
        switch control {
        case .pause:
            if base.isPaused { return base }
            schedule.paused = true
        case .resume:
            if !base.isPaused { return base }
            schedule.paused = nil
            if base.kind.isRecurring && base.nextDueMs <= now, let next = base.kind.nextDue(after: now, now: now) {
                schedule.nextDueMs = next
            }
        case .trigger:
            if !base.triggerPending { schedule.triggerAtMs = now }
            schedule.triggers = (base.triggers ?? 0) + 1
        }
        schedule.revision = Self.nextRevision(after: base, now: now)
        try await store(schedule)
        logger.info("schedule changed: \(control.rawValue)", metadata: [LogKey.schedule: "\(id)"])
        return schedule
    }

    /// Cancels schedule `id` when it is known (404 otherwise), on any daemon.
    func remove(id: String) async throws(ScheduleError) {
        guard try known(id: id) != nil else { throw .noSuchSchedule(id: id) }
        try await cancel(id: id)
    }

    /// Revisions are the writer's clock in ms, and always above the one
    /// changed: a schedule deleted and made again (a client-chosen id) gets a
    /// higher revision than the one deleted as long as the daemons' clocks
    /// agree to within the time between the two requests.
    static func nextRevision(after base: Schedule?, now: Int64) -> Int64 {
        max((base?.revision ?? 0) + 1, now)
    }

    /// Writes `schedule`'s record and applies it here once acknowledged.
    private func store(_ schedule: Schedule) async throws(ScheduleError) {
        let record = ScheduleRecord.schedule(schedule)
        try await write(record.message(topic: topic, partitions: placement.partitions))
        applyLocally(record)
    }
}
