import Foundation
import Synchronization

/// A request to stop that any wait can hear.
///
/// A worker waits on other things than its own lease: room in the emit
/// budget, its emits settling, the partition's read turn, a retry pause.
/// Each of those is a `WatchedValue` woken by its own change; a stop is a
/// change of something else. A wait that must end at a stop registers a
/// wake-up here (`WatchedValue.waitBlocking(until:or:_:)` does), so `request`
/// ends it at once instead of a timed re-check.
///
/// No lost wake-up: `request` sets the flag before it calls the wakers, and
/// a waiter registers before it first checks the flag (inside its wait's
/// predicate, under its value's lock, which the waker takes to poke it).
final class StopSignal: Sendable {
    // One atomic load for the check before every message; the wakers
    // change only when a wait begins or ends.
    private let flag = Atomic<Bool>(false)
    private let wakers = Mutex<(all: [UInt64: @Sendable () -> Void], next: UInt64)>(([:], 0))

    init() {}

    /// Asks to stop and wakes every wait registered meanwhile.
    func request() {
        flag.store(true, ordering: .releasing)
        for wake in wakers.withLock({ Array($0.all.values) }) { wake() }
    }

    /// How many waits would be woken now (what a test waits for before it
    /// requests the stop it tests).
    var waits: Int { wakers.withLock { $0.all.count } }

    /// Whether a stop was requested (one atomic load).
    var isRequested: Bool { flag.load(ordering: .acquiring) }

    /// Runs `body`, a wait whose predicate checks `isRequested`, with `wake`
    /// called if a stop is requested meanwhile.
    func whileWaiting<T>(wake: @escaping @Sendable () -> Void, _ body: () -> T) -> T {
        let id = wakers.withLock { wakers in
            wakers.next += 1
            wakers.all[wakers.next] = wake
            return wakers.next
        }
        defer { _ = wakers.withLock { $0.all.removeValue(forKey: id) } }
        return body()
    }

    /// Blocks until a stop is requested (true) or `deadline` passes (false):
    /// a pause that a stop ends at once.
    func wait(until deadline: ContinuousClock.Instant) -> Bool {
        let quiet = WatchedValue(())
        _ = quiet.waitBlocking(until: Date(timeIntervalSinceNow: max(0, (deadline - .now).seconds)), or: self) { _ in false }
        return isRequested
    }
}

extension WatchedValue {
    /// Wakes the waiters without a change: their tests look at something
    /// else too (a stop).
    func poke() { update { _ in } }

    /// `waitBlocking(until:_:)` that a stop also ends: blocks until `test`
    /// holds, `deadline` passes or `stop` is requested; returns whether
    /// `test` held. A nil `stop` never comes.
    func waitBlocking(until deadline: Date, or stop: StopSignal?, _ test: (Value) -> Bool) -> Bool {
        guard let stop else { return waitBlocking(until: deadline, test) }
        return stop.whileWaiting(wake: { [self] in poke() }) {
            var held = false
            _ = waitBlocking(until: deadline) { value in
                held = test(value)
                return held || stop.isRequested
            }
            return held
        }
    }
}
