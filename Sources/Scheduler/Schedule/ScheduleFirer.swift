import CoreMetrics
import Foundation
import Logging
import Synchronization

/// Fires due schedules: a dedicated timer thread sleeps until the earliest
/// due time (`ScheduleBook.takeDue`), publishes each due task without
/// waiting, and the delivery reports (on the producer's thread) advance the
/// schedule and write its new state (or, for a one-shot, its tombstone) to
/// the schedule topic.
///
/// Every fired task carries the headers `x-schedule-id` and `x-schedule-due`
/// (the due time, RFC 3339), so a consumer can drop the one duplicate a
/// failover may cause.
final class ScheduleFirer: DeliverySink, Sendable {
    private enum Pending: Sendable {
        case task(ScheduleTable.Fire)
        case state(partition: Int32)
    }

    /// Header naming the schedule on every fired task.
    static let idHeader = "x-schedule-id"
    /// Header carrying the due time of the fire (RFC 3339, UTC).
    static let dueHeader = "x-schedule-due"
    /// How long after a failed publication a fire is tried again.
    static let retryMs: Int64 = 1000

    private let store: ScheduleStore
    /// Fires and state writes awaiting their delivery report, by token.
    private let pending = Mutex<(items: [Int64: Pending], nextToken: Int64)>(([:], 0))
    /// The timer thread.
    private let timer = RetryLoop(name: "schedule-timer")
    private let fires: CoreMetrics.Counter
    private let fireErrors: CoreMetrics.Counter
    private let delay: CoreMetrics.Timer

    init(store: ScheduleStore) {
        self.store = store
        fires = store.metrics.counter(MetricName.scheduleFires, [])
        fireErrors = store.metrics.counter(MetricName.scheduleFireErrors, [])
        delay = store.metrics.timer(MetricName.scheduleFireDelay, [])
    }

    /// Starts the timer thread.
    func start() {
        timer.start({ [self, timer] in
            let due = store.book.takeDue(maxWait: 1) { !timer.isRunning }
            for fire in due { publish(fire) }
        }, onFailure: { _ in })
    }

    /// Stops the timer thread (fires in flight still complete): woken from
    /// its wait on the book at once.
    func stop() {
        timer.stop(waking: { [store] in store.book.wake() })
    }

    private func publish(_ fire: ScheduleTable.Fire) {
        if fire.skip {
            // Late under `skip`: counted, not published; the schedule moves on.
            countMisses(fire)
            advance(fire, ackedAt: nil)
            return
        }
        var message = fire.task.outgoing
        message.headers.append(KafkaHeader(Self.idHeader, fire.id))
        message.headers.append(KafkaHeader(Self.dueHeader, RFC3339.format(fire.due)))
        let token = register(.task(fire))
        if let error = store.publisher.produce(message, sink: self, token: token) {
            delivered(token: token, error: KafkaError(code: -1, message: "\(error)"))
        }
    }

    private func register(_ item: Pending) -> Int64 {
        pending.withLock { pending in
            pending.nextToken += 1
            pending.items[pending.nextToken] = item
            return pending.nextToken
        }
    }

    func delivered(token: Int64, error: KafkaError?) {
        guard let item = pending.withLock({ $0.items.removeValue(forKey: token) }) else { return }
        switch item {
        case .task(let fire):
            taskDelivered(fire, error: error)
        case .state(let partition):
            if let error {
                store.logger.warning("could not write a schedule's state after its fire (a new owner may fire it again): \(error)",
                                     metadata: [LogKey.topic: "\(store.topic)", LogKey.partition: "\(partition)"])
            }
            store.book.update { $0.settled(partition) }
        }
    }

    private func taskDelivered(_ fire: ScheduleTable.Fire, error: KafkaError?) {
        let now = RFC3339.nowMs
        if let error {
            fireErrors.increment()
            store.logger.warning("a scheduled task could not be published; retrying in \(Self.retryMs) ms: \(error)",
                                 metadata: [LogKey.schedule: "\(fire.id)", LogKey.topic: "\(fire.task.topic)"])
            store.book.update { $0.failed(fire, retryAt: now + Self.retryMs) }
            return
        }
        fires.increment()
        // Due time to acknowledgement, in microseconds (the due time is whole ms).
        // From when it was to be taken: the slot plus its jitter.
        let late = max(Int64(Date().timeIntervalSince1970 * 1_000_000) - (fire.due + fire.jitterMs) * 1000, 0)
        delay.recordNanoseconds(late * 1000)
        store.recentDelays.withLock { delays in
            if delays.count >= 200_000 { delays.removeFirst(100_000) }
            delays.append(late)
        }
        store.recentTakeDelays.withLock { delays in
            if delays.count >= 200_000 { delays.removeFirst(100_000) }
            delays.append(max(fire.takenAt - fire.due - fire.jitterMs, 0))
        }
        countMisses(fire)
        advance(fire, ackedAt: now)
    }

    /// `scheduler_schedule_misses_total`: slots a fire dropped (`skip`),
    /// stood for (`once`) or left out (`all`, past its maximum).
    private func countMisses(_ fire: ScheduleTable.Fire) {
        let count = fire.skip ? 1 + fire.missed : fire.missed
        guard count > 0 else { return }
        let reason = fire.skip ? "skipped" : fire.policy == .all ? "over_limit" : "folded"
        store.metrics.counter(MetricName.scheduleMisses, [("reason", reason)]).increment(by: count)
    }

    /// Advances the schedule after its fire and writes its new state.
    private func advance(_ fire: ScheduleTable.Fire, ackedAt: Int64?) {
        let outcome = store.book.update { $0.acknowledged(fire, at: ackedAt) }
        let record: ScheduleRecord
        switch outcome {
        case .nothing: return
        case .write(let schedule, _): record = .schedule(schedule)
        case .remove(let id, _): record = .removed(id: id)
        }
        let token = register(.state(partition: fire.partition))
        let message = record.message(topic: store.placement.topic, partitions: store.placement.partitions)
        if let error = store.publisher.produce(message, sink: self, token: token) {
            delivered(token: token, error: KafkaError(code: -1, message: "\(error)"))
        }
    }
}
