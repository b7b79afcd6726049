import Foundation
import Logging

/// Why a schedule request was refused.
public enum ScheduleError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A schedule field is wrong (400).
    case invalid(String)
    /// This daemon holds `[schedules] max_schedules` schedules (409).
    case full(capacity: Int)
    /// No such schedule among this daemon's partitions (404).
    case noSuchSchedule(id: String)
    /// Writing the record failed (503).
    case publish(PublishError)
    /// The schedule topic was not read to its end yet, so an id not found may still exist (503).
    case loading

    public var description: String {
        switch self {
        case .invalid(let reason): reason
        case .full(let capacity): "this daemon holds \(capacity) schedules ([schedules] max_schedules); cancel some with DELETE /tasks/<id>"
        case .noSuchSchedule(let id): "no schedule '\(id.prefix(80))' (it fired, was cancelled, or never existed)"
        case .publish(let error): error.description
        case .loading: "the schedule topic is still being read; try again in a second"
        }
    }
}

/// This daemon's side of the schedules: creating and cancelling them (a
/// record in the schedule topic, acknowledged before the caller hears back)
/// and listing the ones it owns. Firing is `ScheduleFirer`'s, reading the
/// topic `ScheduleConsumer`'s; both share `book`.
public final class ScheduleStore: Sendable {
    let book: ScheduleBook
    /// Every schedule of the cluster (`ScheduleCatalogFollower` reads them all).
    let catalog = LockedValue(ScheduleCatalog())
    /// True once the catalog read every partition of the topic to its end.
    let catalogLive = WatchedValue(false)
    let placement: SchedulePlacement
    let publisher: TaskPublisher
    let metrics: SchedulerMetrics
    let capacity: Int
    let logger: Logger
    /// Recent fire delays (due time to acknowledgement, µs), for the benchmark.
    let recentDelays = LockedValue<[Int64]>([])
    /// For the same fires, due time to when the timer took them (ms): the
    /// timer's share of the delay, the rest is the broker's.
    let recentTakeDelays = LockedValue<[Int64]>([])
    /// API creations between the capacity check and their record applied:
    /// counted with the book under this lock, so concurrent posts cannot
    /// both pass `max_schedules`.
    private let creating: LockedValue<Int>
    /// Records scripts wrote outside `process()`, not acknowledged yet
    /// (`[scripts] max_pending_records`).
    let scriptRecords: LockedValue<PendingRecords>

    init(config: SchedulesSection, publisher: TaskPublisher, metrics: SchedulerMetrics, logger: Logger,
         pending: PendingRecords = PendingRecords(ScriptsSection())) {
        self.publisher = publisher
        self.metrics = metrics
        self.capacity = config.maxSchedules
        self.logger = logger
        let book = ScheduleBook(), capacity = config.maxSchedules
        let creating = LockedValue(0), scriptRecords = LockedValue(pending)
        self.book = book
        self.creating = creating
        self.scriptRecords = scriptRecords
        // Set below, once self exists: the records' delivery reports apply them.
        let applier = LockedValue<(@Sendable (ScheduleRecord) -> Void)?>(nil)
        self.placement = SchedulePlacement(topic: config.topic, partitions: config.partitions, publish: { [publisher, logger] message, record in
            // Scripts outside process(): written without waiting, counted until the broker answers.
            let bytes = message.heldBytes, creates = record.isCreation
            if let refusal = scriptRecords.withLock({ $0.admit(bytes: bytes, creates: creates) }) { return refusal }
            guard case .success(let pending) = publisher.enqueue(message, checkSize: false) else {
                scriptRecords.withLock { $0.settle(bytes: bytes, creates: creates) }
                logger.error("could not write a schedule record from a script", metadata: [LogKey.topic: "\(message.topic)"])
                return nil
            }
            Task {
                do {
                    _ = try await pending.report()
                    // Counted in the table from now on, as the API's are.
                    applier.withLock { $0 }?(record)
                } catch {
                    logger.error("a schedule record from a script failed: \(error)", metadata: [LogKey.topic: "\(message.topic)"])
                }
                scriptRecords.withLock { $0.settle(bytes: bytes, creates: creates) }
            }
            return nil
        }, admit: { [book] in
            // Scripts: checked per schedule; a call makes at most [scripts] max_call_emits. Counted
            // with the API's creations and the scripts' records still waiting for the broker.
            let waiting = creating.withLock { $0 } + scriptRecords.withLock { $0.creations }
            return book.read { $0.count } + waiting >= capacity ? ScheduleError.full(capacity: capacity).description : nil
        })
        applier.withLock { $0 = { [weak self] record in self?.applyLocally(record) } }
    }

    /// The schedule topic.
    public var topic: String { placement.topic }

    /// True once this daemon holds partitions of the schedule topic and read them all.
    public var isLive: Bool { book.read { $0.isLive } }

    /// The schedules this daemon owns, earliest due first.
    var schedules: [Schedule] { book.read { $0.schedules } }

    /// Holds a place for a new schedule until `releaseNew()`: past
    /// max_schedules, counting creations still waiting for the broker (two
    /// concurrent posts cannot both pass the last place), throws `.full`.
    func reserveNew() throws(ScheduleError) {
        let reserved = creating.withLock { inFlight in
            // Scripts' creations waiting for the broker count too (lock order: creating, then scriptRecords).
            guard book.read({ $0.count }) + inFlight + scriptRecords.withLock({ $0.creations }) < capacity else { return false }
            inFlight += 1
            return true
        }
        guard reserved else { throw .full(capacity: capacity) }
    }

    func releaseNew() { creating.withLock { $0 -= 1 } }

    /// Stores a new schedule; returns it once its record was acknowledged.
    func create(task: TaskSpec, kind: ScheduleKind) async throws(ScheduleError) -> Schedule {
        if let problem = publisher.problem(with: task) { throw .invalid(problem) }
        try reserveNew()
        defer { releaseNew() }
        let (schedule, message): (Schedule, OutgoingMessage)
        do {
            (schedule, message) = try placement.create(task: task, kind: kind, now: RFC3339.nowMs)
        } catch {
            throw .invalid(error.description)
        }
        try await write(message)
        // When this daemon owns the partition, the schedule is in its table
        // now, not only once the record is read back (a fetch away: a short
        // `after` would start late). Reading it back later changes nothing.
        applyLocally(.schedule(schedule))
        metrics.counter(MetricName.schedulesCreated, [("kind", kind.name)]).increment()
        logger.info("schedule stored", metadata: [LogKey.schedule: "\(schedule.id)", LogKey.topic: "\(task.topic)",
                                                  LogKey.due: "\(RFC3339.format(schedule.nextDueMs))"])
        return schedule
    }

    /// Cancels schedule `id` with a tombstone. Throws `.noSuchSchedule` when
    /// `id` belongs to a partition this daemon holds and is not there;
    /// otherwise (another daemon owns it) the tombstone is written anyway.
    func cancel(id: String) async throws(ScheduleError) {
        let partition = ScheduleRecord.partition(of: id, partitions: placement.partitions)
        let known = book.read { table -> Bool? in
            table.partitions[partition] == .live ? table.entries[id] != nil : nil
        }
        if known == false { throw .noSuchSchedule(id: id) }
        try await write(placement.cancel(id: id))
        applyLocally(.removed(id: id))
        logger.info("schedule cancelled", metadata: [LogKey.schedule: "\(id)"])
    }

    /// Applies a record this daemon just wrote (and the broker acknowledged)
    /// to its catalog, and to its table if it holds the record's partition.
    func applyLocally(_ record: ScheduleRecord) {
        catalog.withLock { $0.apply(record, partitions: placement.partitions) }
        let partition = ScheduleRecord.partition(of: record.id, partitions: placement.partitions)
        let again = book.update { table -> [ScheduleRecord] in
            guard case .removed(let id) = record else { return table.apply(record, partition: partition) }
            table.removeHere(id, partition: partition)
            return []
        }
        for record in again { rewrite(record) }
    }

    /// Most attempts at writing a record again (1 s apart, each up to the producer timeout).
    static let rewriteAttempts = 30

    /// Writes `record` again, retrying until acknowledged: a re-cancel
    /// tombstone (a fire's state landed after the cancel: a cancelled
    /// schedule must not fire again after a restart) or this owner's merged
    /// state. Gives up after `rewriteAttempts`, logging what to do by hand.
    func rewrite(_ record: ScheduleRecord) {
        let message = record.message(topic: topic, partitions: placement.partitions)
        let id = record.id
        let what = if case .removed = record { "the tombstone of cancelled schedule \(id); cancel it again with DELETE /schedules/\(id)" }
                   else { "the merged state of schedule \(id); its fire count may be behind after a restart" }
        Task { [self] in
            for attempt in 1...Self.rewriteAttempts {
                if case .success(let pending) = publisher.enqueue(message, checkSize: false), (try? await pending.report()) != nil { return }
                logger.warning("writing schedule \(id) again (attempt \(attempt) of \(Self.rewriteAttempts)) failed; retrying in 1 s",
                               metadata: [LogKey.schedule: "\(id)"])
                try? await Task.sleep(for: .seconds(1))
            }
            logger.error("could not write \(what)", metadata: [LogKey.schedule: "\(id)"])
        }
    }

    func write(_ message: OutgoingMessage) async throws(ScheduleError) {
        switch publisher.enqueue(message, checkSize: false) {
        case .failure(let error):
            throw .publish(error)
        case .success(let pending):
            do {
                _ = try await pending.report()
            } catch {
                let kafka = error as? KafkaError ?? KafkaError(code: -1, message: "\(error)")
                logger.warning("could not write to the schedule topic: \(kafka)", metadata: [LogKey.topic: "\(topic)"])
                throw .publish(kafka.isTimeout ? .timedOut : .kafka(kafka))
            }
        }
    }
}
