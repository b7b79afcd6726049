/// What a schedule does with slots it could not fire on time (a daemon was
/// down, a partition was moving, the schedule fell behind).
enum CatchUpPolicy: String, Sendable, Codable, CaseIterable {
    /// A late fire is dropped (counted as a miss); the schedule goes on at its next slot.
    case skip
    /// One fire stands for the whole missed period (the default, and the behaviour before policies existed).
    case once
    /// Every missed slot fires, oldest first, at most `CatchUp.maxAll` fires
    /// per gap: the first missed slot, then the latest `maxAll - 1`; the
    /// slots between are counted as misses.
    case all
}

/// The rules of `CatchUpPolicy`, as plain functions of the schedule's kind,
/// the due time of the fire and when the timer took it.
enum CatchUp {
    /// Most fires `all` makes for one gap (see `CatchUpPolicy.all`).
    static let maxAll = 100
    /// A fire taken later than this (or than one interval of its schedule,
    /// if shorter) is late: `skip` drops it.
    static let lateAfterMs: Int64 = 60_000
    /// Longest walk through the missed slots of a cron schedule (a minutely
    /// cron over a year is 525,600; the walk runs under the table's lock):
    /// past it the count is a lower bound and `all` keeps the last ones found.
    /// `every` slots are counted by arithmetic, without a limit.
    static let walkLimit = 10_000

    /// What follows an acknowledged fire of `due` taken at `now`: the next
    /// due time (nil for a one-shot) and the slots counted as missed.
    static func plan(kind: ScheduleKind, policy: CatchUpPolicy, due: Int64, now: Int64) -> (next: Int64?, missed: Int) {
        guard kind.isRecurring else { return (nil, 0) }
        switch policy {
        case .skip, .once:
            // Both move past everything missed; `skip` dropped late fires before they were taken.
            let next = kind.nextDue(after: due, now: now)
            return (next, missedSlots(kind: kind, after: due, through: now).count)
        case .all:
            let missed = missedSlots(kind: kind, after: due, through: now, keepLast: maxAll - 1)
            guard let first = missed.kept.first else { return (kind.nextDue(after: due, now: due), 0) }
            return (first, missed.count - missed.kept.count)
        }
    }

    /// True when a fire of `due` taken at `now` is late (see `lateAfterMs`).
    static func isLate(kind: ScheduleKind, due: Int64, now: Int64) -> Bool {
        let late = now - due
        guard late > 0 else { return false }
        var window = lateAfterMs
        if kind.isRecurring, let following = kind.nextDue(after: due, now: due) { window = min(window, following - due) }
        return late >= window
    }

    /// The slots after `due` up to `now` (inclusive): how many, and the last `keepLast` of them.
    static func missedSlots(kind: ScheduleKind, after due: Int64, through now: Int64, keepLast: Int = 0) -> (count: Int, kept: [Int64]) {
        if case .every(let ms, let anchor) = kind {
            // Slots are anchor + k * ms: those in (due, now] by arithmetic.
            let first = WallClock.floorDiv(due - anchor, ms) + 1
            let last = WallClock.floorDiv(now - anchor, ms)
            guard last >= first else { return (0, []) }
            let count = Int(clamping: last - first + 1)
            guard keepLast > 0 else { return (count, []) }
            return (count, (max(first, last - Int64(keepLast) + 1)...last).map { anchor + $0 * ms })
        }
        var count = 0
        var kept: [Int64] = []
        var slot = due
        while count < walkLimit, let next = kind.nextDue(after: slot, now: slot), next <= now, next > slot {
            count += 1
            if keepLast > 0 {
                if kept.count == keepLast { kept.removeFirst() }
                kept.append(next)
            }
            slot = next
        }
        return (count, kept)
    }
}
