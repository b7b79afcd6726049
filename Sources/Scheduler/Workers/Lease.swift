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
/// once its thread runs, asks for the partition (`requestTakeover`), the
/// holder stops after its in-flight message and `release`s, and the successor
/// starts at the very next offset. The holder lets go while the successor is
/// on a CPU (spinning for a short while on the release), so the gap is the
/// cost of a flag flip, not of waking a thread on a busy machine; between
/// spins the successor sleeps, woken at once if the holder lets go then
/// (after `patience`, or ending the lease for another reason).
final class LeaseControl: Sendable {
    /// What the holder, its successor and the coordinator say about the
    /// lease, changed together; a change wakes whoever waits on it (the
    /// successor for the release, a paused holder for a stop).
    private struct Handoff: Sendable {
        var stopReason: SliceEndReason?
        /// When the successor asked for the partition.
        var takeoverAt: ContinuousClock.Instant?
        /// The successor is on a CPU right now, spinning on the release.
        var successorSpinning = false
        var released: (at: ContinuousClock.Instant, messagesWaiting: Bool)?
        var renewal: Int?
    }
    private let handoff = WatchedValue(Handoff())
    // The holder reads `stopRequested` before every message, and the
    // successor spins on `releasedFlag`: one atomic load each, instead of the
    // lock the other side changes. Each is set after `handoff` has the detail.
    private let stopRequested = Atomic<Bool>(false)
    private let releasedFlag = Atomic<Bool>(false)

    /// How long a holder in overtime waits for its successor to be on a CPU
    /// before it lets go anyway (bounding the overtime).
    static let patience = Duration.milliseconds(10)
    /// How long the successor spins on the release, then sleeps, before it
    /// spins again: on 2 cores a spinning successor competes with the
    /// holders, so it spins a small share of the time. (A successor sleeping
    /// until the holder woke it to spin held p99 gaps of 4-16 ms against
    /// ~2-3 ms: on a busy machine the woken thread often missed its turn.)
    static let spinLimit = Duration.microseconds(50)
    static let spinEvery = 0.0005

    /// End the lease at the next message boundary.
    func requestStop(_ reason: SliceEndReason) {
        handoff.update { $0.stopReason = reason }
        stopRequested.store(true, ordering: .releasing)
    }

    /// The reason a stop was requested for, or nil while the lease may go on.
    var stopReason: SliceEndReason? {
        stopRequested.load(ordering: .acquiring) ? handoff.read { $0.stopReason } : nil
    }

    /// Blocks until a stop is requested (returning its reason) or `deadline`
    /// passes (nil): a pause that a stop ends at once.
    func waitForStop(until deadline: ContinuousClock.Instant) -> SliceEndReason? {
        let limit = Date(timeIntervalSinceNow: max(0, (deadline - .now).seconds))
        _ = handoff.waitBlocking(until: limit) { $0.stopReason != nil }
        // From the state, not `stopReason`: the flag is set after the wake-up.
        return handoff.read { $0.stopReason }
    }

    /// The successor has started and waits for the partition.
    func requestTakeover() {
        handoff.update { $0.takeoverAt = .now }
    }
    var takeoverRequested: Bool { handoff.read { $0.takeoverAt != nil } }

    /// For the holder in overtime, before each message: whether to let go
    /// now. Yes while the successor spins (letting go costs no wake-up) or
    /// once it has waited `patience`.
    func successorReady() -> Bool {
        let (requested, spinning) = handoff.read { ($0.takeoverAt, $0.successorSpinning) }
        guard let requested else { return false }
        return spinning || .now - requested > Self.patience
    }

    /// For the successor: returns once the holder has let go. Spins for at
    /// most `spinLimit` at a time (the holder lets go only then, or after
    /// `patience`), sleeping `spinEvery` between spins unless released.
    func awaitRelease() {
        requestTakeover()
        while !isReleased {
            handoff.update { $0.successorSpinning = true }
            let until = ContinuousClock.now + Self.spinLimit
            var spins = 0
            while !isReleased {
                spins += 1
                if spins % 128 == 0 && ContinuousClock.now >= until { break }
            }
            handoff.update { $0.successorSpinning = false }
            _ = handoff.waitBlocking(until: Date(timeIntervalSinceNow: Self.spinEvery)) { $0.released != nil }
        }
    }

    /// The holder stopped taking messages at `at` and gave back what it had
    /// not processed; `messagesWaiting`: the next message was already fetched.
    func release(at: ContinuousClock.Instant, messagesWaiting: Bool) {
        handoff.update { $0.released = (at, messagesWaiting) }
        releasedFlag.store(true, ordering: .releasing)
    }
    var isReleased: Bool { releasedFlag.load(ordering: .acquiring) }
    /// When and how the holder let go (after `isReleased`).
    var released: (at: ContinuousClock.Instant, messagesWaiting: Bool)? { handoff.read { $0.released } }

    /// The same worker continues for another slice of `sliceMs`.
    func renew(sliceMs: Int) { handoff.update { $0.renewal = sliceMs } }
    /// The renewal, once (nil if none came): read first, so the holder's
    /// check before each message in overtime wakes nobody.
    func takeRenewal() -> Int? {
        guard handoff.read({ $0.renewal }) != nil else { return nil }
        return handoff.update { value in defer { value.renewal = nil }; return value.renewal }
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
