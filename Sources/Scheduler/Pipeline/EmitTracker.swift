import CoreMetrics
import Foundation
import Synchronization

/// The pipelined emits of one partition: which processed messages still wait
/// for acknowledgements, whether one failed, and so what may be committed.
///
/// Workers record processed messages on their thread; the producer's poll
/// thread reports deliveries. Shared by every lease of the partition, so a
/// successor's commits respect its predecessor's outstanding emits.
final class EmitTracker: Sendable {
    private let watermark = Mutex(OffsetWatermark())
    /// Tracked messages, read without the lock on the per-message path.
    private let tracked = Atomic<Int>(0)
    /// An emit failed and the lane must be read again: checked before every
    /// message (one load), set by the delivery report on the poll thread.
    private let failed = Atomic<Bool>(false)
    /// Messages with failed emit rounds on record (usually 0), read without the lock.
    private let recordedFailures = Atomic<Int>(0)
    /// The group's bound on emits in flight.
    let budget: EmitBudget
    /// Counts the moments every emit had settled, for `waitSettled` (set
    /// only then, not on every delivery).
    private let settledSignal = WatchedValue<UInt64>(0)

    init(budget: EmitBudget) {
        self.budget = budget
    }

    /// `process()` succeeded for `offset` and emitted `emits` tasks of
    /// `bytes` in all (to be enqueued right after this, with `offset` as their
    /// delivery token; the budget's bytes come back when the last settles).
    func processed(offset: Int64, emits: Int, bytes: Int = 0) {
        guard emits > 0 else { return }
        let count = watermark.withLock { state in
            state.processed(offset: offset, emits: emits, bytes: bytes)
            return state.count
        }
        tracked.store(count, ordering: .releasing)
    }

    /// A delivery report for an emit of the message at `token` (its offset).
    func delivered(token: Int64, error: KafkaError?) {
        let (count, failures, freed, settled) = watermark.withLock { state in
            let freed = state.settle(offset: token, error: error.map { "\($0)" })
            return (state.count, state.recordedFailures, freed, state.settled)
        }
        if settled { settledSignal.update { $0 &+= 1 } }
        tracked.store(count, ordering: .releasing)
        recordedFailures.store(failures, ordering: .releasing)
        if error != nil { failed.store(true, ordering: .releasing) }
        budget.release(1, bytes: freed)
    }

    /// The offset that may be committed when the next message to process is `next`.
    func committable(next: Int64) -> Int64 {
        guard tracked.load(ordering: .acquiring) > 0 else { return next }
        return watermark.withLock { $0.committable(processedUpTo: next) }
    }

    /// An emit of this partition failed and the partition must be read
    /// again from the first failed message (cheap: one atomic load).
    var hasFailure: Bool { failed.load(ordering: .acquiring) }

    /// Emits enqueued and not yet acknowledged nor failed.
    var pendingEmits: Int { watermark.withLock { $0.pendingEmits } }

    /// Waits until every emit was acknowledged or failed, or `deadline`
    /// passed, or `stop` is requested. True when settled. Woken by the
    /// delivery that settles the last emit, or by the stop.
    func waitSettled(until deadline: ContinuousClock.Instant, stop: StopSignal? = nil) -> Bool {
        while true {
            // Read before the check: a settling after it changes the count.
            let seen = settledSignal.read { $0 }
            if watermark.withLock({ $0.settled }) { return true }
            let left = deadline - .now
            if left <= .zero || stop?.isRequested == true { return false }
            _ = settledSignal.waitBlocking(until: Date(timeIntervalSinceNow: left.seconds), or: stop) { $0 != seen }
        }
    }

    /// After every emit settled: the first failed message, its error, and
    /// how many emit rounds of it have failed (this one included). Forgets
    /// every message from there on: they will be processed again.
    func rewind() -> (offset: Int64, error: String, rounds: Int)? {
        let result: (Int64, String, Int)? = watermark.withLock { state in
            guard let failure = state.firstFailure else { return nil }
            let rounds = state.rewind(to: failure.offset)
            return (failure.offset, failure.error, rounds)
        }
        recordedFailures.store(watermark.withLock { $0.recordedFailures }, ordering: .releasing)
        failed.store(false, ordering: .releasing)
        tracked.store(watermark.withLock { $0.count }, ordering: .releasing)
        return result
    }

    /// Failed emit rounds of the message at `offset` (0 for most messages).
    func failedRounds(at offset: Int64) -> Int {
        // Called for every message: no lock unless some failure is on record.
        guard recordedFailures.load(ordering: .acquiring) > 0 else { return 0 }
        return watermark.withLock { $0.failedRounds(at: offset) }
    }

    /// The error of the last failed emit round of the message at `offset`.
    func lastError(at offset: Int64) -> String? {
        watermark.withLock { $0.lastError(at: offset) }
    }

    private let sinks = HandleCache<String, TopicEmitSink>()

    /// Where the delivery reports of emits to `topic` go: this tracker,
    /// plus the topic's published / failed counters.
    func sink(topic: String, metrics: SchedulerMetrics) -> TopicEmitSink {
        sinks.value(for: topic) { TopicEmitSink(tracker: self, topic: topic, metrics: metrics) }
    }

    /// The message at `offset` was dead-lettered: forget its failures.
    func forget(_ offset: Int64) {
        let failures = watermark.withLock { state in
            state.forget(offset)
            return state.recordedFailures
        }
        recordedFailures.store(failures, ordering: .releasing)
    }
}

/// The delivery reports of one partition's emits to one topic: counted per
/// topic, then recorded in the partition's tracker.
final class TopicEmitSink: DeliverySink {
    private let tracker: EmitTracker
    private let published: CoreMetrics.Counter
    private let errors: CoreMetrics.Counter

    init(tracker: EmitTracker, topic: String, metrics: SchedulerMetrics) {
        self.tracker = tracker
        self.published = metrics.counter(MetricName.published, [("topic", topic)])
        self.errors = metrics.counter(MetricName.publishErrors, [("topic", topic)])
    }

    func delivered(token: Int64, error: KafkaError?) {
        if error == nil { published.increment() } else { errors.increment() }
        tracker.delivered(token: token, error: error)
    }
}
