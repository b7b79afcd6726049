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
    /// Publishing the task, or writing its pool record, failed.
    case publish(PublishError)

    public var description: String {
        switch self {
        case .loading(let topic): "the task pool is still being read from topic '\(topic)'; retry shortly"
        case .full(let capacity):
            "the task pool is full (\(capacity) tasks, [producer] max_pool_tasks); remove tasks with DELETE /tasks/<index>, or post with \"once\": true"
        case .noSuchTask(let index, let count):
            count == 0 ? "no task at index \(index): the pool is empty"
                       : "no task at index \(index): the pool has \(count) task(s), indexes 0 to \(count - 1)"
        case .publish(let error): error.description
        }
    }
}

/// This daemon's task pool: a `TaskPool` in memory, every change written to
/// the pool topic first (see `PoolRecord`), so what `GET /tasks` shows after an
/// acknowledged change survives a restart on a real cluster.
public final class TaskPoolStore: Sendable {
    // Threading rule: `pool` is only touched inside `state.withLock`; nil until
    // `load` has replayed the topic.
    private let state = LockedValue<TaskPool?>(nil)
    private let publisher: TaskPublisher
    /// The pool topic.
    public let topic: String
    /// `[producer] max_pool_tasks`.
    public let capacity: Int
    /// How long a request waits for the pool to be read at start.
    private let loadWaitMs: Int
    private let logger: Logger

    init(topic: String, capacity: Int, loadWaitMs: Int, publisher: TaskPublisher, logger: Logger) {
        self.topic = topic
        self.capacity = capacity
        self.loadWaitMs = loadWaitMs
        self.publisher = publisher
        self.logger = logger
    }

    /// The pool's tasks in order, or nil while it is loading.
    public var tasks: [TaskSpec]? { state.withLock { $0?.tasks } }

    /// True once the pool was read from its topic.
    public var isLoaded: Bool { state.withLock { $0 != nil } }

    /// Waits up to `loadWaitMs` for the pool to be read (a request arriving
    /// just after start), then throws `.loading`. Checks every 10 ms: this
    /// only ever waits during the first moments of the daemon.
    func loaded() async throws(PoolError) {
        let deadline = ContinuousClock.now + .milliseconds(loadWaitMs)
        while !isLoaded {
            guard ContinuousClock.now < deadline, (try? await Task.sleep(for: .milliseconds(10))) != nil else {
                throw .loading(topic: topic)
            }
        }
    }

    /// The pool's tasks, once loaded (see `loaded`).
    func currentTasks() async throws(PoolError) -> [TaskSpec] {
        try await loaded()
        return tasks ?? []
    }

    /// Replays `records` (the pool topic, oldest first). A topic without the
    /// marker record was never seeded: `initial` (generate.lua's `tasks`) is
    /// written to it first, with ids derived from the position, so daemons
    /// seeding one topic at the same moment write the same keys.
    func load(records: [PoolRecord], initial: [TaskSpec]) async throws(PoolError) {
        var pool = TaskPool(capacity: capacity)
        var seeded = false
        for record in records {
            switch record {
            case .task(let id, let task): pool.replay(id: id, task: task)
            case .removed(let id): pool.replay(id: id, task: nil)
            case .created: seeded = true
            }
        }
        if !seeded {
            let writes = initial.enumerated().map { PoolRecord.task(id: "initial-\($0.offset)", $0.element) } + [.created]
            for record in writes {
                try await write(record)
                if case .task(let id, let task) = record { pool.replay(id: id, task: task) }
            }
            logger.info("task pool created from generate.lua's tasks", metadata: [LogKey.topic: "\(topic)", LogKey.count: "\(initial.count)"])
        } else {
            logger.info("task pool read back", metadata: [LogKey.topic: "\(topic)", LogKey.count: "\(pool.count)"])
        }
        state.withLock { $0 = pool }
    }

    /// Adds `task` to the pool and publishes it once; returns once both its
    /// pool record and the publication were acknowledged. On any failure the
    /// task is not in the pool (a record already written is tombstoned).
    func add(_ task: TaskSpec) async throws(PoolError) -> DeliveryReport {
        if let problem = publisher.problem(with: task) { throw .publish(.invalid(problem)) }
        try await loaded()
        let id = UUID().uuidString
        let record = PoolRecord.task(id: id, task)
        // Reserve and enqueue under one lock, so the order of the records in
        // the topic is the order of the reservations.
        let reserved: Result<(TaskPool.Reservation, Result<PendingDelivery, PublishError>), PoolError> = state.withLock { pool in
            guard pool != nil else { return .failure(.loading(topic: topic)) }
            guard let reservation = pool!.reserve() else { return .failure(.full(capacity: capacity)) }
            return .success((reservation, publisher.enqueue(record.message(topic: topic), checkSize: false)))
        }
        let (reservation, delivery) = try reserved.get()
        // The publication and the pool record travel together.
        async let published = publisher.publishAll([task])
        let written = await Self.acknowledged(delivery)
        let result = await published[0]
        switch (written, result) {
        case (.success, .success(let report)):
            state.withLock { $0?.commit(reservation, id: id, task: task) }
            return report
        case (.success, .failure(let error)):
            state.withLock { $0?.release(reservation) }
            // The client is told it failed and may retry: the record must go.
            _ = publisher.enqueue(PoolRecord.removed(id: id).message(topic: topic), checkSize: false)
            throw .publish(error)
        case (.failure(let error), _):
            state.withLock { $0?.release(reservation) }
            logger.warning("could not write to the pool topic: \(error)", metadata: [LogKey.topic: "\(topic)"])
            throw .publish(error)
        }
    }

    /// Removes the task at `index`; returns it once its tombstone was
    /// acknowledged. If the tombstone fails the task is put back.
    func remove(at index: Int) async throws(PoolError) -> TaskSpec {
        try await loaded()
        let taken: Result<TaskPool.Entry, PoolError> = state.withLock { pool in
            guard pool != nil else { return .failure(.loading(topic: topic)) }
            guard let entry = pool!.remove(at: index) else { return .failure(.noSuchTask(index: index, count: pool!.count)) }
            return .success(entry)
        }
        let entry = try taken.get()
        let delivery = publisher.enqueue(PoolRecord.removed(id: entry.id).message(topic: topic), checkSize: false)
        if case .failure(let error) = await Self.acknowledged(delivery) {
            state.withLock { $0?.restore(entry) }
            logger.warning("could not write to the pool topic: \(error)", metadata: [LogKey.topic: "\(topic)"])
            throw .publish(error)
        }
        return entry.task
    }

    /// Removes every task; returns how many were removed. Tasks whose
    /// tombstone failed are put back, and the error is thrown.
    func removeAll() async throws(PoolError) -> Int {
        try await loaded()
        let taken: Result<[TaskPool.Entry], PoolError> = state.withLock { pool in
            guard pool != nil else { return .failure(.loading(topic: topic)) }
            return .success(pool!.removeAll())
        }
        let entries = try taken.get()
        let deliveries = entries.map { publisher.enqueue(PoolRecord.removed(id: $0.id).message(topic: topic), checkSize: false) }
        var firstError: PublishError?
        for (entry, delivery) in zip(entries, deliveries) {
            if case .failure(let error) = await Self.acknowledged(delivery) {
                state.withLock { $0?.restore(entry) }
                firstError = firstError ?? error
            }
        }
        if let firstError { throw .publish(firstError) }
        return entries.count
    }

    private func write(_ record: PoolRecord) async throws(PoolError) {
        let delivery = publisher.enqueue(record.message(topic: topic), checkSize: false)
        if case .failure(let error) = await Self.acknowledged(delivery) {
            logger.warning("could not write to the pool topic: \(error)", metadata: [LogKey.topic: "\(topic)"])
            throw .publish(error)
        }
    }

    private static func acknowledged(_ delivery: Result<PendingDelivery, PublishError>) async -> Result<Void, PublishError> {
        switch delivery {
        case .failure(let error): return .failure(error)
        case .success(let pending):
            do {
                _ = try await pending.report()
                return .success(())
            } catch {
                let kafka = error as? KafkaError ?? KafkaError(code: -1, message: "\(error)")
                return .failure(kafka.isTimeout ? .timedOut : .kafka(kafka))
            }
        }
    }
}
