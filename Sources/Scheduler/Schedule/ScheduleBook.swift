import Foundation

/// The `ScheduleTable` shared by the threads that use it: the consumer
/// thread (records, assignments, revokes), the timer thread (fires), the
/// producer's delivery thread (acknowledgements) and API requests.
///
/// Every change runs under one condition lock; the timer thread and a
/// revoke waiting for fires to settle sleep on it and are woken after changes.
final class ScheduleBook: @unchecked Sendable {
    // Threading rule: `table` is only read or written between
    // `condition.lock()` and `condition.unlock()`.
    private let condition = NSCondition()
    private var table = ScheduleTable()

    /// Runs `body` on the table under the lock, then wakes the waiters.
    func update<T>(_ body: (inout ScheduleTable) throws -> T) rethrows -> T {
        condition.lock()
        defer {
            condition.broadcast()
            condition.unlock()
        }
        return try body(&table)
    }

    /// Reads the table under the lock.
    func read<T>(_ body: (ScheduleTable) throws -> T) rethrows -> T {
        condition.lock()
        defer { condition.unlock() }
        return try body(table)
    }

    /// Waits until `body` returns a non-nil value or `deadline` passes
    /// (woken by every `update`); returns the last value.
    func wait<T>(until deadline: Date, _ body: (inout ScheduleTable) -> T?) -> T? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let value = body(&table) { return value }
            if !condition.wait(until: deadline) { return body(&table) }
        }
    }

    /// For the timer thread: waits until a schedule is due (or `maxWait`
    /// passed, or `stop` returns true) and takes what is due, marking it in flight.
    func takeDue(maxWait: TimeInterval, stop: () -> Bool) -> [ScheduleTable.Fire] {
        condition.lock()
        defer { condition.unlock() }
        let giveUp = Date(timeIntervalSinceNow: maxWait)
        while !stop() {
            let now = RFC3339.nowMs
            let due = table.nextDue()
            if let due, due <= now { return table.takeDue(now: now) }
            let wake = due.map { Date(timeIntervalSince1970: TimeInterval($0) / 1000) } ?? giveUp
            if !condition.wait(until: min(wake, giveUp)) && Date() >= giveUp { return [] }
        }
        return []
    }

    /// Wakes the timer thread (e.g. to notice it must stop).
    func wake() {
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }
}
