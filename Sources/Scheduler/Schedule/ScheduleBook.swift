import Foundation

/// The `ScheduleTable` shared by the threads that use it: the consumer
/// thread (records, assignments, revokes), the timer thread (fires), the
/// producer's delivery thread (acknowledgements) and API requests.
///
/// Every change runs under one lock; the timer thread and a revoke waiting
/// for fires to settle sleep on it and are woken after changes.
final class ScheduleBook: Sendable {
    private let table = WatchedValue(ScheduleTable())

    /// Runs `body` on the table under the lock, then wakes the waiters.
    func update<T, E: Error>(_ body: (inout ScheduleTable) throws(E) -> T) throws(E) -> T {
        try table.update(body)
    }

    /// Reads the table under the lock.
    func read<T, E: Error>(_ body: (ScheduleTable) throws(E) -> T) throws(E) -> T {
        try table.read(body)
    }

    /// Waits until `body` returns a non-nil value or `deadline` passes
    /// (woken by every `update`); returns the last value.
    func wait<T>(until deadline: Date, _ body: (inout ScheduleTable) -> T?) -> T? {
        table.waitBlocking { table in
            if let value = body(&table) { return .done(value) }
            return Date() >= deadline ? .done(nil) : .wait(until: deadline)
        }
    }

    /// For the timer thread: waits until a schedule is due (or `maxWait`
    /// passed, or `stop` returns true) and takes what is due, marking it in flight.
    func takeDue(maxWait: TimeInterval, stop: () -> Bool) -> [ScheduleTable.Fire] {
        let giveUp = Date(timeIntervalSinceNow: maxWait)
        return table.waitBlocking { table in
            if stop() { return .done([]) }
            let now = RFC3339.nowMs
            let due = table.nextDue()
            if let due, due <= now { return .done(table.takeDue(now: now)) }
            if Date() >= giveUp { return .done([]) }
            let wake = due.map { Date(timeIntervalSince1970: TimeInterval($0) / 1000) } ?? giveUp
            return .wait(until: min(wake, giveUp))
        }
    }

    /// Wakes the timer thread (e.g. to notice it must stop).
    func wake() {
        table.update { _ in }
    }
}
