import Foundation

/// A value shared between threads whose changes wake whoever waits on it:
/// a dedicated thread blocks on the condition (`waitBlocking`), an async
/// task suspends on a continuation that the change satisfying it resumes
/// (`wait`). Nothing polls.
final class WatchedValue<Value: Sendable>: @unchecked Sendable {
    // Threading rule: `value`, `waiters`, `nextWaiter` and every
    // `CancelMark.cancelled` are only touched between `condition.lock()` and
    // `condition.unlock()`; continuations are resumed after unlocking, tests
    // run under the lock.
    private let condition = NSCondition()
    private var value: Value
    private var waiters: [UInt64: (test: @Sendable (Value) -> Bool, done: OneShot<Bool>)] = [:]
    private var nextWaiter: UInt64 = 0

    init(_ value: Value) {
        self.value = value
    }

    /// Changes the value under the lock, then wakes the waiters it satisfies.
    @discardableResult
    func update<T>(_ body: (inout Value) -> T) -> T {
        condition.lock()
        let result = body(&value)
        var ready: [OneShot<Bool>] = []
        for (id, waiter) in waiters where waiter.test(value) {
            waiters[id] = nil
            ready.append(waiter.done)
        }
        condition.broadcast()
        condition.unlock()
        for done in ready { done.resume(true) }
        return result
    }

    /// Reads the value under the lock.
    func read<T>(_ body: (Value) -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body(value)
    }

    /// Suspends until `test` holds (true), `timeout` passes or the task is
    /// cancelled (false). `test` runs under the lock on the updating thread:
    /// keep it short.
    func wait(timeout: Duration? = nil, until test: @escaping @Sendable (Value) -> Bool) async -> Bool {
        let id = withLock { () -> UInt64 in
            nextWaiter += 1
            return nextWaiter
        }
        // Set when the task is cancelled before its waiter is registered.
        let mark = CancelMark()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let done = OneShot(continuation)
                let answer: Bool? = withLock {
                    if test(value) { return true }
                    if mark.cancelled || Task.isCancelled { return false }
                    waiters[id] = (test, done)
                    return nil
                }
                if let answer { return done.resume(answer) }
                if let timeout {
                    DispatchQueue.global().asyncAfter(deadline: .now() + timeout.seconds) { [self] in
                        withLock { waiters[id] = nil }
                        done.resume(false)
                    }
                }
            }
        } onCancel: {
            let waiter = withLock { () -> OneShot<Bool>? in
                mark.cancelled = true
                return waiters.removeValue(forKey: id)?.done
            }
            waiter?.resume(false)
        }
    }

    /// Blocks the calling (dedicated) thread until `test` holds or
    /// `deadline` passes; returns whether it holds.
    func waitBlocking(until deadline: Date, _ test: (Value) -> Bool) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !test(value) {
            if !condition.wait(until: deadline) { return test(value) }
        }
        return true
    }

    private func withLock<T>(_ body: () -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body()
    }
}

/// Whether one `WatchedValue.wait` was cancelled (guarded by the value's lock).
private final class CancelMark: @unchecked Sendable {
    // Threading rule: `cancelled` is only touched under the owning WatchedValue's condition lock.
    var cancelled = false
}
