import CoreMetrics
import Foundation
import Logging
import Synchronization

/// Fires due schedules: a dedicated timer thread sleeps until the earliest
/// due time (`ScheduleBook.takeDue`), publishes each due task without
/// waiting, and the delivery reports (on the producer's thread) advance the
/// schedule and write its new state (or, for a one-shot, its tombstone) to
/// the schedule topic. Those state records wait up to `stateLingerMs` to be
/// written together (see there).
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
    /// How long a fire's state record (a one-shot's tombstone) waits for
    /// others to be written with it. It is not on the fire's path (the task
    /// was acknowledged already); written one by one, each is a message set
    /// of its own, which the owner reads back one fetch each, and the
    /// embedded broker finds every fetch's offset by walking the partition's
    /// message sets from the first (100,000 fires in a minute: most of the
    /// process's CPU, and the fires' p99). The cost: a revoke waits this much
    /// longer for fires in flight, and a daemon killed within it after a
    /// fire leaves that fire to be repeated by the next owner (as it did
    /// before, for the shorter time to the acknowledgement).
    static let stateLingerMs = 50

    private let store: ScheduleStore
    /// Fires and state writes awaiting their delivery report, by token.
    private let pending = Mutex<(items: [Int64: Pending], nextToken: Int64)>(([:], 0))
    /// The timer thread.
    private let timer = RetryLoop(name: "schedule-timer")
    /// State records waiting for `stateLingerMs`, in the order of their fires;
    /// after `stop()` they are written at once (the producer closes next).
    private let stateBuffer = Mutex<(states: [(token: Int64, message: OutgoingMessage)], writesAtOnce: Bool)>(([], false))
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
        stateBuffer.withLock { $0.writesAtOnce = true }
        writeStates()
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
        let (first, atOnce) = stateBuffer.withLock { buffer in
            buffer.states.append((token, message))
            return (buffer.states.count == 1, buffer.writesAtOnce)
        }
        if atOnce {
            writeStates()
        } else if first {
            // Produced together, the records of one partition go out as one message set.
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Self.stateLingerMs)) { [self] in writeStates() }
        }
    }

    /// Produces the state records waiting (without blocking: `produce` only enqueues).
    private func writeStates() {
        let batch = stateBuffer.withLock { buffer in
            defer { buffer.states = [] }
            return buffer.states
        }
        for (token, message) in batch {
            if let error = store.publisher.produce(message, sink: self, token: token) {
                delivered(token: token, error: KafkaError(code: -1, message: "\(error)"))
            }
        }
    }
}
