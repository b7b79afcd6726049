import Foundation

/// The lifecycle of one librdkafka handle, consulted by every call that
/// touches it: `running`, then `closing` (the owner's close has begun: only
/// the calls closing needs are let in), then `closed` (the handle is, or is
/// about to be, destroyed: every call is refused).
///
/// Calls are counted while inside, so the owner destroys the handle only
/// once the last one left: a call racing `close` either gets in before the
/// state changes (and the destroy waits for it) or is refused, never touches
/// freed memory. The lock is held only to read and change the state and the
/// count, never across the librdkafka call itself.
final class HandleGate: @unchecked Sendable {
    enum State: Sendable, Equatable { case running, closing, closed }

    // Threading rule: `state` and `inside` only under `condition`.
    private let condition = NSCondition()
    private var state = State.running
    private var inside = 0

    /// The state now.
    var current: State { condition.withLock { state } }

    /// Runs `body` if the handle is running (or, with `whileClosing`, still
    /// closing); nil, without running it, otherwise.
    func use<T>(whileClosing: Bool = false, _ body: () throws -> T) rethrows -> T? {
        let entered = condition.withLock {
            guard state == .running || (whileClosing && state == .closing) else { return false }
            inside += 1
            return true
        }
        guard entered else { return nil }
        defer {
            condition.withLock {
                inside -= 1
                if inside == 0 { condition.broadcast() }
            }
        }
        return try body()
    }

    /// running → closing; false if closing had begun already.
    func beginClosing() -> Bool {
        condition.withLock {
            guard state == .running else { return false }
            state = .closing
            return true
        }
    }

    /// → closed, then waits until no call is inside (each is bounded by its
    /// own timeout); afterwards the handle may be destroyed.
    func finishClosing() {
        condition.lock()
        state = .closed
        while inside > 0 { condition.wait() }
        condition.unlock()
    }
}
