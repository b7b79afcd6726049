import Foundation
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
/// once its thread runs, asks for the partition (`awaitRelease`), the holder
/// stops after its in-flight message and `release`s, and the successor
/// starts at the very next offset. The holder lets go while the successor is
/// on a CPU, spinning on the release, so the gap is the cost of a flag flip,
/// not of waking a thread on a busy machine.
///
/// The state is `detail` (what each side said, with when and why, behind a
/// mutex) and two atomics for what the holder checks before every message
/// and the successor spins on: `flags`, each bit set after `detail` holds
/// what it announces, and `takeoverAt`; neither side takes a lock on the hot
/// path. The stop is a `StopSignal`, which the holder's other waits hear too.
///
/// The one wait here that no signal ends is the successor's, between two
/// spins: it sleeps on its own timer (`spinEvery`). Woken by the holder
/// instead (at its release, through a condition), the successor was often
/// scheduled behind the holder and missed the handoff: p99 gaps of 10-16 ms
/// against 1-3 ms with the timer (`make bench`, handoff phase, alternating
/// runs, 2026-12-05). The holder lets go only while the successor spins, or
/// after `patience`, so the timer delays nothing but that patience case.
final class LeaseControl: Sendable {
    private struct Detail: Sendable {
        var stopReason: SliceEndReason?
        var released: (at: ContinuousClock.Instant, messagesWaiting: Bool)?
        var renewal: Int?
    }
    private let detail = Mutex(Detail())

    private struct Flag {
        /// The successor is on a CPU right now, spinning on `released`.
        static let spinning: UInt8 = 2
        static let released: UInt8 = 4
        static let renewed: UInt8 = 8
    }
    private let flags = Atomic<UInt8>(0)
    /// When the successor asked for the partition, in nanoseconds after
    /// `epoch` (0: not yet).
    private let takeoverAt = Atomic<Int64>(0)
    private static let epoch = ContinuousClock.now
    private static func sinceEpoch() -> Int64 { max(1, nanoseconds(.now - epoch)) }
    private static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    /// Set when the lease must end: the holder checks it before every
    /// message, and its waits for emit room, settling emits, the read turn
    /// and retry pauses end at it.
    let stop = StopSignal()

    /// How long a holder in overtime waits for its successor to be on a CPU
    /// before it lets go anyway (bounding the overtime).
    static let patience = Duration.milliseconds(10)
    /// Spins of the successor on the release (about 40 µs here), and how
    /// long it sleeps before it spins again: on 2 cores a spinning successor
    /// competes with the holders, so it spins under a tenth of the time.
    static let spinLimit = 50_000
    static let spinEvery = 0.0005

    private func has(_ flag: UInt8) -> Bool { flags.load(ordering: .acquiring) & flag != 0 }
    private func set(_ flag: UInt8, _ on: Bool = true) {
        if on { flags.bitwiseOr(flag, ordering: .acquiringAndReleasing) } else { flags.bitwiseAnd(~flag, ordering: .acquiringAndReleasing) }
    }

    /// End the lease at the next message boundary (a later reason replaces
    /// an earlier one: a revoke, then shutdown, reports shutdown).
    func requestStop(_ reason: SliceEndReason) {
        detail.withLock { $0.stopReason = reason }
        stop.request()
    }

    /// The reason a stop was requested for, or nil while the lease may go on.
    var stopReason: SliceEndReason? {
        stop.isRequested ? detail.withLock { $0.stopReason } : nil
    }

    var takeoverRequested: Bool { takeoverAt.load(ordering: .acquiring) != 0 }

    /// For the holder in overtime, before each message: whether to let go
    /// now. Yes while the successor spins (letting go costs no wake-up) or
    /// once it has waited `patience`.
    var successorReady: Bool {
        let asked = takeoverAt.load(ordering: .acquiring)
        guard asked != 0 else { return false }
        if has(Flag.spinning) { return true }
        return Self.sinceEpoch() - asked > Self.nanoseconds(Self.patience)
    }

    /// For the successor: asks for the partition and returns once the holder
    /// has let go. It spins in bursts and says so; the holder lets go only
    /// during a burst (between bursts it keeps processing) or after
    /// `patience`, so the partition never waits for this thread to be
    /// scheduled again.
    func awaitRelease() {
        takeoverAt.store(Self.sinceEpoch(), ordering: .releasing)
        while !isReleased {
            set(Flag.spinning)
            var spins = 0
            while !isReleased && spins < Self.spinLimit { spins += 1 }
            set(Flag.spinning, false)
            if isReleased { return }
            Thread.sleep(forTimeInterval: Self.spinEvery)
        }
    }

    /// The holder stopped taking messages at `at` and gave back what it had
    /// not processed; `messagesWaiting`: the next message was already fetched.
    func release(at: ContinuousClock.Instant, messagesWaiting: Bool) {
        detail.withLock { $0.released = (at, messagesWaiting) }
        set(Flag.released)
    }
    var isReleased: Bool { has(Flag.released) }
    /// When and how the holder let go (after `isReleased`).
    var released: (at: ContinuousClock.Instant, messagesWaiting: Bool)? { detail.withLock { $0.released } }

    /// The same worker continues for another slice of `sliceMs`.
    func renew(sliceMs: Int) {
        detail.withLock { $0.renewal = sliceMs }
        set(Flag.renewed)
    }
    /// The renewal, once (nil if none came): the flag first, so the holder's
    /// check before each message in overtime takes no lock.
    func takeRenewal() -> Int? {
        guard has(Flag.renewed) else { return nil }
        set(Flag.renewed, false)
        return detail.withLock { value in defer { value.renewal = nil }; return value.renewal }
    }
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
