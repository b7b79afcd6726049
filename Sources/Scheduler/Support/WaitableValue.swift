import Foundation

/// A value guarded by a condition lock: every change wakes the waiters, and
/// a waiter sleeps until its predicate holds or its deadline passes. For a
/// dedicated thread that must wait for something another thread reports
/// (signalled, not polled).
final class WaitableValue<Value>: @unchecked Sendable {
    // Threading rule: `value` is only read or written with `condition` locked.
    private let condition = NSCondition()
    private var value: Value

    init(_ value: Value) {
        self.value = value
    }

    /// Reads or changes the value; waiters are woken afterwards.
    func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        condition.lock()
        defer {
            condition.broadcast()
            condition.unlock()
        }
        return try body(&value)
    }

    /// Blocks until `predicate` returns non-nil, or `deadline` passed (nil).
    func wait<T>(until deadline: Date, _ predicate: (Value) -> T?) -> T? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let result = predicate(value) { return result }
            if !condition.wait(until: deadline) { return predicate(value) }
        }
    }
}
