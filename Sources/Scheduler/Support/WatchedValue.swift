import Foundation

/// A value shared between threads whose changes wake whoever waits on it:
/// a dedicated thread blocks on the condition (`waitBlocking`), an async
/// task suspends on a continuation that the change satisfying it resumes
/// (`wait`). Nothing polls.
final class WatchedValue<Value: Sendable>: @unchecked Sendable {
    // Safe because `value`, `waiters`, `nextWaiter` and every
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

    /// Changes the value under the lock, then wakes the waiters it satisfies
    /// (also when `body` throws: it may have changed the value first).
    @discardableResult
    func update<T, E: Error>(_ body: (inout Value) throws(E) -> T) throws(E) -> T {
        condition.lock()
        var ready: [OneShot<Bool>] = []
        defer {
            for (id, waiter) in waiters where waiter.test(value) {
                waiters[id] = nil
                ready.append(waiter.done)
            }
            condition.broadcast()
            condition.unlock()
            for done in ready { done.resume(true) }
        }
        return try body(&value)
    }

    /// Reads the value under the lock.
    func read<T, E: Error>(_ body: (Value) throws(E) -> T) throws(E) -> T {
        condition.lock()
        defer { condition.unlock() }
        return try body(value)
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
            if !sleep(until: deadline) { return test(value) }
        }
        return true
    }

    /// Waits on the condition (locked) until woken or `deadline`; false at
    /// the deadline. `Date.distantFuture` waits untimed: Foundation's timed
    /// wait traps converting so far a date.
    private func sleep(until deadline: Date) -> Bool {
        guard deadline != .distantFuture else {
            condition.wait()
            return true
        }
        return condition.wait(until: deadline)
    }

    /// What a step of `waitBlocking(_:)` found: the answer, or that it must
    /// wait for a change (or, at the latest, until a time).
    enum WaitStep<T> {
        case done(T)
        case wait(until: Date)
    }

    /// Blocks the calling (dedicated) thread, running `step` under the lock
    /// first and after every change (and at the time it asked to be woken),
    /// until it is done. `step` may change the value (e.g. take what it
    /// waited for); that wakes nobody.
    func waitBlocking<T>(_ step: (inout Value) -> WaitStep<T>) -> T {
        condition.lock()
        defer { condition.unlock() }
        while true {
            switch step(&value) {
            case .done(let answer): return answer
            case .wait(let until): _ = sleep(until: until)
            }
        }
    }

    private func withLock<T>(_ body: () -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body()
    }
}

/// Whether one `WatchedValue.wait` was cancelled (guarded by the value's lock).
private final class CancelMark: @unchecked Sendable {
    // Safe because `cancelled` is only touched under the owning WatchedValue's condition lock.
    var cancelled = false
}
