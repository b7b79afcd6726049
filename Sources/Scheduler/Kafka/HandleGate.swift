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
final class HandleGate: Sendable {
    enum State: Sendable, Equatable { case running, closing, closed }

    /// The state and the calls inside; `finishClosing` waits for the count to drop to zero.
    private struct Occupancy: Sendable {
        var state = State.running
        var inside = 0
    }
    private let occupancy = WatchedValue(Occupancy())

    /// The state now.
    var current: State { occupancy.read { $0.state } }

    /// Runs `body` if the handle is running (or, with `whileClosing`, still
    /// closing); nil, without running it, otherwise.
    func use<T>(whileClosing: Bool = false, _ body: () throws -> T) rethrows -> T? {
        let entered = occupancy.update { gate in
            guard gate.state == .running || (whileClosing && gate.state == .closing) else { return false }
            gate.inside += 1
            return true
        }
        guard entered else { return nil }
        defer { occupancy.update { $0.inside -= 1 } }
        return try body()
    }

    /// running → closing; false if closing had begun already.
    func beginClosing() -> Bool {
        occupancy.update { gate in
            guard gate.state == .running else { return false }
            gate.state = .closing
            return true
        }
    }

    /// → closed, then waits until no call is inside (each is bounded by its
    /// own timeout); afterwards the handle may be destroyed.
    func finishClosing() {
        occupancy.update { $0.state = .closed }
        _ = occupancy.waitBlocking(until: .distantFuture) { $0.inside == 0 }
    }
}
