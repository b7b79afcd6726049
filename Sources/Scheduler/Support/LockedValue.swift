import Foundation

/// A value guarded by a lock: the one place the library shares mutable state
/// between threads without an actor (for state touched from C callbacks and
/// dedicated threads, where an actor hop is not possible).
final class LockedValue<Value>: @unchecked Sendable {
    // Threading rule: `value` is only read or written inside `withLock`.
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) {
        self.value = value
    }

    func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
