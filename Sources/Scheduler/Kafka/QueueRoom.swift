import Foundation
import Synchronization

/// Room in librdkafka's local queue, for a sender refused with QUEUE_FULL.
///
/// Every delivery report frees a place; the sender waits for the next one
/// instead of sleeping and trying again. A report takes the lock only while
/// a sender waits, so the emit path pays one atomic load per report.
/// A report that comes between the refusal and the wait is missed; a full
/// queue has thousands more coming, and `timeout` bounds the wait anyway
/// (the queue may be full of messages that all fail at once, or the room
/// may come from `queue.buffering.max.kbytes` rather than a report).
final class QueueRoom: Sendable {
    private let waiting = Atomic<Int>(0)
    private let freed = WatchedValue<UInt64>(0)

    /// Senders waiting now (what a test waits for).
    var waiters: Int { waiting.load(ordering: .acquiring) }

    /// A report freed a place (called on the poll thread for every report).
    func noteFreed() {
        guard waiting.load(ordering: .acquiring) > 0 else { return }
        freed.update { $0 &+= 1 }
    }

    /// Blocks until a report frees a place, `stop` is requested or
    /// `timeout` passes.
    func wait(timeout: Duration, stop: StopSignal?) {
        waiting.add(1, ordering: .acquiringAndReleasing)
        defer { waiting.subtract(1, ordering: .acquiringAndReleasing) }
        let seen = freed.read { $0 }
        _ = freed.waitBlocking(until: Date(timeIntervalSinceNow: timeout.seconds), or: stop) { $0 != seen }
    }
}
