/// The schedules this daemon owns, as a plain value: which partitions of the
/// schedule topic it holds and whether each was read to its end, the
/// schedules in them, the timer heap over those that may fire, and the rules
/// for replaying records, firing and handing partitions over.
///
/// A fire goes through: `takeDue` (the schedule leaves the heap and counts
/// as in flight on its partition), `acknowledged` or `failed` (the task's
/// delivery report), and `settled` once the state record written for it was
/// acknowledged. A partition being revoked waits until its fires settled, so
/// the next owner reads the state after every fire it made.
struct ScheduleTable: Sendable {
    /// Where a partition of the schedule topic stands on this daemon.
    enum PartitionState: Sendable, Equatable {
        /// Assigned; its records are being read from the beginning. Nothing fires yet.
        case loading
        /// Read to its end once: its schedules fire.
        case live
        /// Being revoked: nothing new fires; fires in flight finish.
        case revoking
    }

    /// One schedule with its bookkeeping.
    struct Entry: Sendable, Equatable {
        var schedule: Schedule
        let partition: Int32
        /// Bumped at every change; heap entries of older generations are stale.
        var generation: UInt64
        /// Taken by `takeDue` and not yet acknowledged or failed.
        var inFlight = false
    }

    /// A fire to make: publish `task`, then report back with `due`.
    struct Fire: Sendable, Equatable {
        let id: String
        let partition: Int32
        let due: Int64
        /// When the timer took it: a fire taken after its next slot passed
        /// stands for the whole missed period (see `acknowledged`).
        let takenAt: Int64
        let task: TaskSpec
        let kind: String
        /// An extra fire asked for by a trigger (the cadence does not move).
        var trigger = false
        /// Late under the `skip` policy: not published, only counted.
        var skip = false
        /// Slots this fire stands for beside its own (`once`), or dropped
        /// (`all` past its maximum); for the misses metric.
        var missed = 0
        var policy: CatchUpPolicy = .once
        /// The slot's jitter: the fire is taken at `due + jitterMs`.
        var jitterMs: Int64 = 0
        /// The schedule's revision when taken: a one-shot changed to another
        /// time while this fire was in flight is not done with it.
        var revision: Int64 = 0
    }

    /// What to write to the schedule topic after an acknowledged fire.
    enum Outcome: Sendable, Equatable {
        /// The schedule's new state (a recurring one).
        case write(Schedule, partition: Int32)
        /// A tombstone (a one-shot is done).
        case remove(id: String, partition: Int32)
        /// Nothing (cancelled or revoked meanwhile); the fire is settled.
        case nothing
    }

    private(set) var partitions: [Int32: PartitionState] = [:]
    private(set) var entries: [String: Entry] = [:]
    private var heap = TimerHeap()
    /// Ids whose tombstone was read, with the revision it removed: a later
    /// record of no higher revision comes from a fire that raced the cancel
    /// and is tombstoned again; a higher one is a new schedule of the same id.
    private var tombstoned: [String: Tomb] = [:]
    /// Tombstones this daemon wrote and applied before reading them back (a
    /// one-shot's fire acknowledged, a cancel through its API), oldest first:
    /// until one is read back, records of no higher revision are older than
    /// it (a one-shot's creation read back after its fire must not make it
    /// fire again), and when it is read back it removes nothing newer.
    private var removedHere: [String: Gone] = [:]
    private var inFlight: [Int32: Int] = [:]
    private var generation: UInt64 = 0

    /// A removed schedule: its partition and revision(s).
    private struct Gone: Sendable {
        let partition: Int32
        var revisions: [Int64]
    }

    /// A tombstone read: the schedule's partition and the revision it
    /// removed (no array: one is kept per id ever tombstoned, see `tombstoned`).
    private struct Tomb: Sendable {
        let partition: Int32
        let revision: Int64
    }

    /// Schedules held (in every partition state).
    var count: Int { entries.count }

    /// The schedules, earliest due first.
    var schedules: [Schedule] { entries.values.map(\.schedule).sorted { ($0.nextDueMs, $0.id) < ($1.nextDueMs, $1.id) } }

    /// Schedules held per kind name (`at`, `after`, `every`, `cron`), kept
    /// up to date by `setEntry`: the gauge reads it every second under the
    /// book's lock, and a pass over every schedule there (~20-40 ms at
    /// 100,000 on 2 busy cores) held up the fires due meanwhile.
    private(set) var countsByKind: [String: Int] = [:]

    /// True when at least one partition is held and all held ones are live.
    var isLive: Bool { !partitions.isEmpty && partitions.values.allSatisfy { $0 == .live } }

    /// Fires of `partition` not yet settled.
    func inFlight(_ partition: Int32) -> Int { inFlight[partition] ?? 0 }

    /// Partitions newly assigned: read from the beginning before anything fires.
    mutating func assign(_ assigned: [Int32]) {
        for partition in assigned {
            drop(partition)
            partitions[partition] = .loading
        }
    }

    /// The partition was read to its end: its schedules may fire (those due
    /// meanwhile at once: once each, whatever they missed).
    mutating func markLive(_ partition: Int32) {
        guard partitions[partition] == .loading else { return }
        partitions[partition] = .live
        for entry in entries.values where entry.partition == partition && !entry.inFlight { push(entry) }
    }

    /// The partitions are being revoked: nothing of them fires any more.
    mutating func beginRevoke(_ revoked: [Int32]) {
        for partition in revoked where partitions[partition] != nil { partitions[partition] = .revoking }
    }

    /// Forgets a partition (after its revoke settled) and its schedules.
    mutating func drop(_ partition: Int32) {
        partitions[partition] = nil
        entries = entries.filter { $0.value.partition != partition }
        countsByKind = entries.values.reduce(into: [:]) { $0[$1.schedule.kind.name, default: 0] += 1 }
        tombstoned = tombstoned.filter { $0.value.partition != partition }
        removedHere = removedHere.filter { $0.value.partition != partition }
        inFlight[partition] = nil
    }

    /// Applies one record of a held partition (in offset order). Returns
    /// records to write: a tombstone again (a fire's state that landed after
    /// a cancel), or the merged schedule (a record that left out the
    /// owner's newer state, see `ScheduleMerge`), so the topic's last record
    /// of each schedule stays complete for the next owner and for compaction.
    mutating func apply(_ record: ScheduleRecord, partition: Int32) -> [ScheduleRecord] {
        guard partitions[partition] != nil else { return [] }
        switch record {
        case .removed(let id):
            readTombstone(id, partition: partition)
            return []
        case .schedule(let schedule):
            guard let entry = entries[schedule.id] else { return applyNew(schedule, partition: partition) }
            switch ScheduleMerge.apply(held: entry.schedule, incoming: schedule) {
            case .ignore:
                return []
            case .replace(let merged):
                replace(entry, with: merged)
                return []
            case .merged(let merged):
                replace(entry, with: merged)
                return partitions[partition] == .live ? [.schedule(merged)] : []
            }
        }
    }

    /// Removes schedule `id` for a tombstone this daemon wrote and had
    /// acknowledged (a cancel through its API), before reading it back.
    mutating func removeHere(_ id: String, partition: Int32) {
        guard partitions[partition] != nil, let entry = entries[id] else { return }
        setEntry(nil, for: id)
        removedHere[id, default: Gone(partition: partition, revisions: [])].revisions.append(entry.schedule.revision ?? 0)
    }

    private mutating func readTombstone(_ id: String, partition: Int32) {
        if var mine = removedHere[id], !mine.revisions.isEmpty {
            // Our own tombstone read back: it removes nothing created after it.
            let revision = mine.revisions.removeFirst()
            removedHere[id] = mine.revisions.isEmpty ? nil : mine
            if let entry = entries[id], (entry.schedule.revision ?? 0) > revision { return }
            setEntry(nil, for: id)
            tombstoned[id] = Tomb(partition: partition, revision: revision)
            return
        }
        let revision = max(entries[id]?.schedule.revision ?? 0, tombstoned[id]?.revision ?? 0)
        setEntry(nil, for: id)
        tombstoned[id] = Tomb(partition: partition, revision: revision)
    }

    private mutating func applyNew(_ schedule: Schedule, partition: Int32) -> [ScheduleRecord] {
        let revision = schedule.revision ?? 0
        // Older than a tombstone of ours not read back yet: already gone.
        if let mine = removedHere[schedule.id]?.revisions.last, revision <= mine { return [] }
        if let gone = tombstoned[schedule.id]?.revision {
            if revision <= gone { return [.removed(id: schedule.id)] }
            tombstoned[schedule.id] = nil
        }
        let entry = Entry(schedule: schedule, partition: partition, generation: nextGeneration())
        setEntry(entry, for: schedule.id)
        if partitions[partition] == .live { push(entry) }
        return []
    }

    private mutating func replace(_ held: Entry, with schedule: Schedule) {
        var entry = held
        entry.schedule = schedule
        entry.generation = nextGeneration()
        setEntry(entry, for: schedule.id)
        if !entry.inFlight && partitions[entry.partition] == .live { push(entry) }
    }

    /// The earliest due time among schedules that may fire.
    mutating func nextDue() -> Int64? {
        while let top = heap.first {
            if isCurrent(top) { return top.due }
            _ = heap.pop()
        }
        return nil
    }

    /// Takes every schedule due at `now` (at most `limit`), marking each in flight.
    mutating func takeDue(now: Int64, limit: Int = .max) -> [Fire] {
        var fires: [Fire] = []
        while fires.count < limit, let top = heap.first, top.due <= now {
            _ = heap.pop()
            guard isCurrent(top), var entry = entries[top.id] else { continue }
            entry.inFlight = true
            setEntry(entry, for: top.id)
            inFlight[entry.partition, default: 0] += 1
            fires.append(Self.fire(entry, now: now))
        }
        if heap.count > 2 * entries.count + 64 {
            let (entries, partitions) = (self.entries, self.partitions)
            heap.rebuild { Self.isCurrent($0, entries: entries, partitions: partitions) }
        }
        return fires
    }

    /// The fire to make for `entry`, taken at `now`: a trigger when one is
    /// pending and due first, else its next due time (under `skip`, a late
    /// one is dropped).
    private static func fire(_ entry: Entry, now: Int64) -> Fire {
        let schedule = entry.schedule
        var fire = Fire(id: schedule.id, partition: entry.partition, due: schedule.nextDueMs, takenAt: now,
                        task: schedule.task, kind: schedule.kind.name)
        fire.policy = schedule.policy
        fire.revision = schedule.revision ?? 0
        fire.jitterMs = schedule.jitterOffset(schedule.nextDueMs)
        if schedule.triggerPending, let at = schedule.triggerAtMs, at <= now, schedule.isPaused || at <= schedule.nextDueMs {
            return Fire(id: schedule.id, partition: entry.partition, due: at, takenAt: now, task: schedule.task,
                        kind: schedule.kind.name, trigger: true)
        }
        if schedule.policy == .skip && CatchUp.isLate(kind: schedule.kind, due: schedule.nextDueMs + fire.jitterMs, now: now) {
            fire.skip = true
        }
        if schedule.kind.isRecurring && now - schedule.nextDueMs > 0 {
            let slots = CatchUp.missedSlots(kind: schedule.kind, after: schedule.nextDueMs, through: now).count
            fire.missed = schedule.policy == .all ? max(slots - (CatchUp.maxAll - 1), 0) : slots
        }
        return fire
    }

    /// The task of `fire` was acknowledged at `ackedAt` (nil: not timed), or
    /// it was a late fire `skip` dropped: advances the schedule and says
    /// what to write. A `.nothing` outcome settles the fire at once.
    ///
    /// The next due time is computed from when the fire was taken, not from
    /// the acknowledgement: a slow acknowledgement that lets the next slot
    /// pass makes that slot fire at once (late) instead of skipping it, while
    /// a fire taken late (after downtime, or that very catch-up) moves the
    /// schedule past everything missed, so it fires once for the period.
    mutating func acknowledged(_ fire: Fire, at ackedAt: Int64? = nil) -> Outcome {
        let now = fire.takenAt
        guard var entry = entries[fire.id], entry.inFlight else {
            settled(fire.partition)
            return .nothing
        }
        entry.inFlight = false
        let after: Schedule?
        if fire.trigger {
            after = entry.schedule.afterTrigger(due: fire.due, ackedAt: ackedAt)
        } else if fire.skip {
            after = entry.schedule.afterSkip(due: fire.due, now: now)
        } else if !entry.schedule.kind.isRecurring && (entry.schedule.revision ?? 0) != fire.revision && entry.schedule.nextDueMs != fire.due {
            // Moved to another time while this fire was in flight: that time still fires.
            var fired = entry.schedule
            fired.fires += 1
            fired.lastFiredDueMs = fire.due
            after = fired
        } else {
            after = entry.schedule.afterFire(due: fire.due, now: now, ackedAt: ackedAt)
        }
        guard let next = after else {
            setEntry(nil, for: fire.id)
            // Its tombstone is ours: until read back, its creation coming back is older.
            removedHere[fire.id, default: Gone(partition: fire.partition, revisions: [])].revisions.append(entry.schedule.revision ?? 0)
            return .remove(id: fire.id, partition: fire.partition)
        }
        entry.schedule = next
        entry.generation = nextGeneration()
        setEntry(entry, for: fire.id)
        if partitions[fire.partition] == .live { push(entry) }
        return .write(next, partition: fire.partition)
    }

    /// The task of `fire` could not be published: it is due again at `retryAt`
    /// (its due time, and so its fire delay, stay those of the missed fire).
    mutating func failed(_ fire: Fire, retryAt: Int64) {
        defer { settled(fire.partition) }
        guard var entry = entries[fire.id], entry.inFlight else { return }
        entry.inFlight = false
        entry.generation = nextGeneration()
        setEntry(entry, for: fire.id)
        if partitions[fire.partition] == .live {
            heap.push(TimerHeap.Entry(due: retryAt, id: fire.id, generation: entry.generation))
        }
    }

    /// The record written after a fire of `partition` was acknowledged (or failed).
    mutating func settled(_ partition: Int32) {
        if let count = inFlight[partition], count > 0 { inFlight[partition] = count - 1 }
    }

    private mutating func push(_ entry: Entry) {
        // Paused with no trigger pending: not in the heap until it changes.
        guard let due = entry.schedule.effectiveDueMs else { return }
        heap.push(TimerHeap.Entry(due: due, id: entry.schedule.id, generation: entry.generation))
    }

    private func isCurrent(_ timer: TimerHeap.Entry) -> Bool {
        Self.isCurrent(timer, entries: entries, partitions: partitions)
    }

    private static func isCurrent(_ timer: TimerHeap.Entry, entries: [String: Entry], partitions: [Int32: PartitionState]) -> Bool {
        guard let entry = entries[timer.id] else { return false }
        return entry.generation == timer.generation && !entry.inFlight && partitions[entry.partition] == .live
    }

    /// Every change of `entries` but `drop`'s goes through here, keeping `countsByKind`.
    private mutating func setEntry(_ entry: Entry?, for id: String) {
        let old = if let entry { entries.updateValue(entry, forKey: id) } else { entries.removeValue(forKey: id) }
        guard old?.schedule.kind.name != entry?.schedule.kind.name else { return }
        if let kind = old?.schedule.kind.name {
            let left = (countsByKind[kind] ?? 0) - 1
            countsByKind[kind] = left > 0 ? left : nil
        }
        if let kind = entry?.schedule.kind.name { countsByKind[kind, default: 0] += 1 }
    }

    private mutating func nextGeneration() -> UInt64 {
        generation += 1
        return generation
    }
}
