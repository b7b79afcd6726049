import Foundation
import Logging

/// Why the pool refused a change.
public enum PoolError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The pool is still being read from its topic at start.
    case loading(topic: String)
    /// The pool holds `[producer] max_pool_tasks` tasks.
    case full(capacity: Int)
    /// No task at that index.
    case noSuchTask(index: Int, count: Int)
    /// No task with that id.
    case noSuchID(String)
    /// Publishing the task, or writing its pool record, failed.
    case publish(PublishError)

    public var description: String {
        switch self {
        case .loading(let topic): "the task pool is still being read from topic '\(topic)'; retry shortly"
        case .full(let capacity):
            "the task pool is full (\(capacity) tasks, [producer] max_pool_tasks); remove tasks with DELETE /tasks/<id or index>, or post with \"once\": true"
        case .noSuchTask(let index, let count):
            count == 0 ? "no task at index \(index): the pool is empty"
                       : "no task at index \(index): the pool has \(count) task(s), indexes 0 to \(count - 1)"
        case .noSuchID(let id): "no task with id '\(id.prefix(80))' in the pool (it was removed, or never existed)"
        case .publish(let error): error.description
        }
    }
}

/// The task pool shared by every daemon on one pool topic. What it holds is
/// what this daemon's `PoolFollower` has read of the topic; a change is a
/// record written to the topic, and the call returns once the broker
/// acknowledged it and the follower applied it, so the daemon that answered
/// already shows the change (and the others within a fetch).
public final class TaskPoolStore: Sendable {
    let follower: PoolFollower
    private let publisher: TaskPublisher
    /// The pool topic.
    public let topic: String
    /// `[producer] max_pool_tasks`.
    public let capacity: Int
    /// How long a request waits for the pool to be read at start, and for
    /// the follower to apply a record this daemon wrote.
    let waitMs: Int
    private let logger: Logger
    /// Set at shutdown, before the producer closes: when retractions must
    /// have succeeded (they go on retrying until then).
    private let stopDeadline = LockedValue<ContinuousClock.Instant?>(nil)
    /// Retractions still retrying, by entry id.
    private let retracting = LockedValue<[String: Task<Bool, Never>]>([:])

    init(topic: String, capacity: Int, loadWaitMs: Int, publisher: TaskPublisher, bootstrapServers: String,
         properties: [String: String], logger: Logger) {
        self.topic = topic
        self.capacity = capacity
        self.waitMs = loadWaitMs
        self.publisher = publisher
        self.logger = logger
        follower = PoolFollower(topic: topic, capacity: capacity, bootstrapServers: bootstrapServers,
                                properties: properties, logger: logger)
    }

    private var state: WatchedValue<TaskPool> { follower.state }

    /// The pool's tasks in order, or nil while it is loading.
    public var tasks: [TaskSpec]? { state.read { $0.isReady ? $0.tasks : nil } }

    /// True once the pool was read from its topic (and seeded).
    public var isLoaded: Bool { state.read(\.isReady) }

    /// The last tick record the follower read.
    var lastTick: PoolTick? { state.read(\.lastTick) }

    /// Waits up to the producer timeout for the pool to be read (a request
    /// arriving just after start), then throws `.loading`.
    func loaded() async throws(PoolError) {
        guard await state.wait(timeout: .milliseconds(waitMs), until: { $0.isReady }) else { throw .loading(topic: topic) }
    }

    /// The pool's entries, once loaded (see `loaded`).
    func currentEntries() async throws(PoolError) -> [TaskPool.Entry] {
        try await loaded()
        return state.read(\.entries)
    }

    /// Waits until the follower applied every record before `offset`; false after `timeout`.
    func applied(_ offset: Int64, timeout: Duration) async -> Bool {
        await state.wait(timeout: timeout) { $0.nextOffset >= offset }
    }

    /// Seeds a topic that has none of it yet: `initial` (generate.lua's
    /// `tasks`) with ids derived from the position, then the marker, so
    /// daemons seeding one topic at the same moment write the same keys.
    /// Call once the follower caught up; returns once the follower applied them.
    func seed(_ initial: [TaskSpec]) async throws(PoolError) {
        let writes = initial.enumerated().map { PoolRecord.task(id: "initial-\($0.offset)", $0.element) } + [.created]
        var last: DeliveryReport?
        for record in writes {
            let report = try await write(record)
            state.update { $0.acknowledge(record, offset: report.offset) }
            last = report
        }
        if let last { _ = await applied(last.offset + 1, timeout: .milliseconds(waitMs)) }
        logger.info("task pool created from generate.lua's tasks", metadata: [LogKey.topic: "\(topic)", LogKey.count: "\(initial.count)"])
    }

    /// Publishes `task` once, then adds it to the pool; returns once both
    /// were acknowledged and this daemon's follower shows it. A failed
    /// publication writes nothing to the pool, so a client told it failed
    /// never finds the task there. Capacity counts the shared pool plus this
    /// daemon's additions in flight (daemons posting at once can overshoot
    /// it by their additions in flight).
    func add(_ task: TaskSpec) async throws(PoolError) -> DeliveryReport {
        if let problem = publisher.problem(with: task) { throw .publish(.invalid(problem)) }
        try await loaded()
        guard state.update({ $0.reserve() }) else { throw .full(capacity: capacity) }
        defer { state.update { $0.release() } }
        let report: DeliveryReport
        do throws(PublishError) {
            report = try await publisher.publish(task)
        } catch {
            throw .publish(error)
        }
        let id = UUID().uuidString.lowercased()
        let record = PoolRecord.task(id: id, task)
        let written: DeliveryReport
        do throws(PoolError) {
            written = try await write(record)
        } catch {
            // A record whose acknowledgement failed (timed out) may still land: take it back.
            retract(id)
            throw error
        }
        await showing(record, written)
        return report
    }

    /// Removes the task at `index`; returns it once its tombstone was
    /// acknowledged and applied here.
    func remove(at index: Int) async throws(PoolError) -> TaskSpec {
        try await loaded()
        let entry = state.read { $0.entry(at: index) }
        guard let entry else { throw .noSuchTask(index: index, count: state.read(\.count)) }
        let report = try await write(.removed(id: entry.id))
        await showing(.removed(id: entry.id), report)
        return entry.task
    }

    /// Removes the task with `id`; returns it once its tombstone was
    /// acknowledged and applied here.
    func remove(id: String) async throws(PoolError) -> TaskSpec {
        try await loaded()
        guard let entry = state.read({ $0.entry(id: id) }) else { throw .noSuchID(id) }
        let report = try await write(.removed(id: id))
        await showing(.removed(id: id), report)
        return entry.task
    }

    /// Removes every task; returns how many were removed once their
    /// tombstones were acknowledged and applied here. On a failure the
    /// tasks whose tombstone failed stay, and the error is thrown.
    func removeAll() async throws(PoolError) -> Int {
        try await loaded()
        let entries = state.read(\.entries)
        let deliveries = entries.map { publisher.enqueue(PoolRecord.removed(id: $0.id).message(topic: topic), checkSize: false) }
        var firstError: PoolError?
        var last: DeliveryReport?
        for (entry, delivery) in zip(entries, deliveries) {
            do throws(PoolError) {
                let report = try await Self.acknowledged(delivery)
                state.update { $0.acknowledge(.removed(id: entry.id), offset: report.offset) }
                last = report
            } catch {
                firstError = firstError ?? error
            }
        }
        if let last { _ = await applied(last.offset + 1, timeout: .milliseconds(waitMs)) }
        if let firstError {
            logger.warning("could not write to the pool topic: \(firstError)", metadata: [LogKey.topic: "\(topic)"])
            throw firstError
        }
        return entries.count
    }

    /// Most attempts at a retraction's tombstone (each waits up to the producer timeout, then 1 s).
    static let retractAttempts = 30

    /// Writes the tombstone of an entry whose addition failed, retrying
    /// until it is acknowledged (the client was told the addition failed,
    /// so it must not find the task in the pool, now or after a restart).
    /// Bounded: after `retractAttempts`, or at shutdown once `stop`'s grace
    /// passed, the entry may stay, and the log says how to remove it.
    private func retract(_ id: String) {
        // Registered under the lock the task's end takes too, so it is never
        // removed before it was added.
        retracting.withLock { inFlight in inFlight[id] = Task { [self] () -> Bool in
            defer { self.retracting.withLock { _ = $0.removeValue(forKey: id) } }
            for attempt in 1...Self.retractAttempts {
                if (try? await write(.removed(id: id))) != nil { return true }
                // The producer closes after the pool's service stopped: never write past its grace.
                if let deadline = stopDeadline.withLock({ $0 }), ContinuousClock.now + .seconds(1) >= deadline { break }
                logger.warning("retracting pool entry \(id) (attempt \(attempt) of \(Self.retractAttempts)) failed; retrying in 1 s",
                               metadata: [LogKey.topic: "\(topic)"])
                try? await Task.sleep(for: .seconds(1))
            }
            logger.error("could not remove a pool entry whose addition failed; if it shows in GET /tasks, remove it with DELETE /tasks/\(id)",
                         metadata: [LogKey.topic: "\(topic)"])
            return false
        } }
    }

    /// The daemon is stopping (the producer is still open): retractions
    /// still retrying get until `grace` has passed, each within one more
    /// write; returns the ids of those that failed (logged).
    @discardableResult
    func stop(grace: Duration) async -> [String] {
        stopDeadline.withLock { $0 = .now + grace }
        var failed: [String] = []
        for (id, task) in retracting.withLock({ $0 }) {
            if await !task.value { failed.append(id) }
        }
        return failed
    }

    /// Retractions still retrying (for tests).
    var retractionsInFlight: Int { retracting.withLock { $0.count } }

    /// Writes the tick record (the publisher, before and after each tick).
    func writeTick(_ tick: PoolTick) async throws(PoolError) {
        _ = try await write(.tick(tick))
    }

    /// Applies `record`, acknowledged with `report`, once every record
    /// before it was; waits (bounded) for that, so the answer's sender
    /// reads its own write.
    private func showing(_ record: PoolRecord, _ report: DeliveryReport) async {
        state.update { $0.acknowledge(record, offset: report.offset) }
        if await !applied(report.offset + 1, timeout: .milliseconds(waitMs)) {
            logger.warning("the pool topic follower has not read back a record this daemon wrote within \(waitMs) ms; GET /tasks may not show it yet",
                           metadata: [LogKey.topic: "\(topic)", LogKey.offset: "\(report.offset)"])
        }
    }

    private func write(_ record: PoolRecord) async throws(PoolError) -> DeliveryReport {
        do throws(PoolError) {
            // The pool topic's first write may create it on the embedded broker: off the concurrency pool.
            do { try await publisher.prepareTopicOffPool(topic) } catch { throw PoolError.publish(.kafka(error as? KafkaError ?? KafkaError(code: -1, message: "\(error)"))) }
            return try await Self.acknowledged(publisher.enqueue(record.message(topic: topic), checkSize: false))
        } catch {
            logger.warning("could not write to the pool topic: \(error)", metadata: [LogKey.topic: "\(topic)"])
            throw error
        }
    }

    private static func acknowledged(_ delivery: Result<PendingDelivery, PublishError>) async throws(PoolError) -> DeliveryReport {
        switch delivery {
        case .failure(let error): throw .publish(error)
        case .success(let pending):
            do {
                return try await pending.report()
            } catch {
                let kafka = error as? KafkaError ?? KafkaError(code: -1, message: "\(error)")
                throw .publish(kafka.isTimeout ? .timedOut : .kafka(kafka))
            }
        }
    }
}
