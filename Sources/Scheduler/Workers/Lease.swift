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

/// How the coordinator and the workers talk about one lease while it runs.
///
/// A handoff is make-before-break: at the slice boundary the holder keeps
/// processing ("overtime") while the coordinator decides; the successor,
/// once its thread runs, asks for the partition (`requestTakeover`), the
/// holder stops after its in-flight message and `release`s, and the successor
/// starts at the very next offset. The gap is then the cost of a flag flip,
/// not of waking threads on a busy machine.
final class LeaseControl: Sendable {
    private let stopRequested = Atomic<Bool>(false)
    private let reasonValue = Mutex<SliceEndReason>(.shutdown)
    private let takeover = Atomic<Bool>(false)
    private let releasedFlag = Atomic<Bool>(false)
    private let release = Mutex<(at: ContinuousClock.Instant, messagesWaiting: Bool)?>(nil)
    private let renewal = Mutex<Int?>(nil)

    /// End the lease at the next message boundary.
    func requestStop(_ reason: SliceEndReason) {
        reasonValue.withLock { $0 = reason }
        stopRequested.store(true, ordering: .releasing)
    }

    /// The reason a stop was requested for, or nil while the lease may go on.
    var stopReason: SliceEndReason? {
        stopRequested.load(ordering: .acquiring) ? reasonValue.withLock { $0 } : nil
    }

    private let successorSpinning = Atomic<Bool>(false)
    private let takeoverAt = Mutex<ContinuousClock.Instant?>(nil)

    /// How long a holder in overtime waits for its successor to be on a CPU
    /// before it lets go anyway (bounding the overtime).
    static let patience = Duration.milliseconds(10)

    /// The successor has started and waits for the partition.
    func requestTakeover() {
        takeoverAt.withLock { $0 = .now }
        takeover.store(true, ordering: .releasing)
    }
    var takeoverRequested: Bool { takeover.load(ordering: .acquiring) }

    /// The successor is on a CPU right now, spinning on `isReleased`: letting
    /// go now costs no thread wake-up.
    func setSuccessorSpinning(_ spinning: Bool) { successorSpinning.store(spinning, ordering: .releasing) }
    var successorReady: Bool {
        guard takeoverRequested else { return false }
        if successorSpinning.load(ordering: .acquiring) { return true }
        return takeoverAt.withLock { $0.map { .now - $0 > Self.patience } ?? false }
    }

    /// The holder stopped taking messages at `at` and gave back what it had
    /// not processed; `messagesWaiting`: the next message was already fetched.
    func release(at: ContinuousClock.Instant, messagesWaiting: Bool) {
        self.release.withLock { $0 = (at, messagesWaiting) }
        releasedFlag.store(true, ordering: .releasing)
    }
    var isReleased: Bool { releasedFlag.load(ordering: .acquiring) }
    /// When and how the holder let go (after `isReleased`).
    var released: (at: ContinuousClock.Instant, messagesWaiting: Bool)? { release.withLock { $0 } }

    /// The same worker continues for another slice of `sliceMs`.
    func renew(sliceMs: Int) { renewal.withLock { $0 = sliceMs } }
    func takeRenewal() -> Int? { renewal.withLock { value in defer { value = nil }; return value } }
}

/// The right of one worker to process one topic partition for one slice.
struct Lease: Sendable {
    let id: UInt64
    /// The slot (partition, lane) the lease is for.
    let slot: SlotKey
    var partition: TopicPartition { slot.partition }
    let workerIndex: Int
    let sliceMs: Int
    let grantedAt: ContinuousClock.Instant
    let control = LeaseControl()
    /// The control of the lease this one takes the partition over from.
    let predecessor: LeaseControl?
}

/// What a worker reports when its lease ends.
struct SliceReport: Sendable {
    let lease: Lease
    let reason: SliceEndReason
    let messages: Int
    let errors: Int
    let deadLettered: Int
    let busy: Duration
    /// Durations of this slice's `process()` calls.
    let luaCalls: LuaCallTally
    /// When this slice began (grant, or the last renewal).
    let startedAt: ContinuousClock.Instant
    /// When the slice ended (for a final report: when the worker stopped taking messages).
    let endedAt: ContinuousClock.Instant
    /// Offset of the next message to process after this slice.
    let nextOffset: Int64?
    /// Messages were already fetched and waiting when the slice ended, so
    /// the time until the next lease's first message is a pure handoff gap.
    let readyAtEnd: Bool
    /// For the first report of a lease that took its partition over from
    /// another worker: from the predecessor's last message to this lease's
    /// first (only when messages were waiting, so it is a pure handoff cost).
    let handoffGap: Duration?
    /// A final report of messages processed in overtime, after the slice's
    /// boundary was already reported (so it is not a slice of its own).
    let overtime: Bool
    /// False for a slice boundary announced while the worker goes on
    /// (overtime, waiting for the coordinator's decision); true when the
    /// worker has let go of the partition.
    let final: Bool
}
