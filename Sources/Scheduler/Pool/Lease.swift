import Synchronization

/// A topic partition.
public struct TopicPartition: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Topic name.
    public var topic: String
    /// Partition id.
    public var partition: Int32

    /// Creates a topic partition.
    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public static func < (lhs: TopicPartition, rhs: TopicPartition) -> Bool {
        (lhs.topic, lhs.partition) < (rhs.topic, rhs.partition)
    }

    public var description: String { "\(topic)[\(partition)]" }
}

/// Why a lease ended (a slice boundary).
public enum SliceEndReason: String, Sendable {
    /// `slice_ms` elapsed.
    case slice
    /// The partition had no more messages.
    case drained
    /// The script called `scheduler.yield()`.
    case yield
    /// A rebalance took the partition away from this process.
    case revoked
    /// The daemon is shutting down.
    case shutdown
}

/// Lets the coordinator ask a worker to end its lease at the next message boundary.
final class LeaseControl: Sendable {
    private let stopRequested = Atomic<Bool>(false)
    private let reasonValue = Mutex<SliceEndReason>(.shutdown)

    func requestStop(_ reason: SliceEndReason) {
        reasonValue.withLock { $0 = reason }
        stopRequested.store(true, ordering: .releasing)
    }

    /// The reason a stop was requested for, or nil while the lease may go on.
    var stopReason: SliceEndReason? {
        stopRequested.load(ordering: .acquiring) ? reasonValue.withLock { $0 } : nil
    }
}

/// The right of one worker to process one topic partition for one slice.
struct Lease: Sendable {
    let id: UInt64
    let partition: TopicPartition
    let workerIndex: Int
    let sliceMs: Int
    let grantedAt: ContinuousClock.Instant
    let control = LeaseControl()
}

/// What a worker reports when its lease ends.
struct SliceReport: Sendable {
    let lease: Lease
    let reason: SliceEndReason
    let messages: Int
    let errors: Int
    let deadLettered: Int
    let busy: Duration
    /// When the worker stopped taking messages (the slice boundary).
    let endedAt: ContinuousClock.Instant
    /// When it started processing its first message, if any.
    let firstMessageAt: ContinuousClock.Instant?
    /// Offset of the next message to process after this slice.
    let nextOffset: Int64?
}
