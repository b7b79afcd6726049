import Foundation
import Logging

/// What `task-scheduler-bench` needs to time schedule fires: one daemon's
/// schedule machinery (store, consumer in the schedule group, timer thread)
/// on a topic of the benchmark's own, and a way to add one-shot schedules.
/// Only through the `Benchmark` SPI: the daemon wires these pieces in
/// `ScheduleService`.
@_spi(Benchmark) public final class ScheduleRig: Sendable {
    let store: ScheduleStore
    let firer: ScheduleFirer
    let consumer: ScheduleConsumer
    let publisher: TaskPublisher

    /// A schedule store on `topic` (with `partitions`), in consumer group `group`.
    public init(topic: String, group: String, partitions: Int, maxSchedules: Int,
                bootstrapServers: String, publisher: TaskPublisher, logger: Logger) {
        var config = SchedulesSection()
        config.topic = topic
        config.group = group
        config.partitions = partitions
        config.maxSchedules = maxSchedules
        self.publisher = publisher
        store = ScheduleStore(config: config, publisher: publisher, metrics: SchedulerMetrics(), logger: logger)
        firer = ScheduleFirer(store: store)
        consumer = ScheduleConsumer(store: store, group: group, bootstrapServers: bootstrapServers, properties: [:])
    }

    /// Starts the timer thread and the schedule consumer.
    public func start() {
        firer.start()
        consumer.start()
    }

    /// Stops both (blocking: call it from a thread of its own).
    public func stop() {
        consumer.stop()
        firer.stop()
    }

    /// The schedule partitions are assigned and read to their end.
    public var isLive: Bool { store.isLive }

    /// Stores a one-shot schedule of `message` to `topic`, due at `dueMs`
    /// (ms since the epoch); the delivery of its record.
    public func addOneShot(topic: String, message: String, key: String, dueMs: Int64) throws -> PendingDelivery {
        let task = TaskSpec(topic: topic, message: message, key: key)
        let (_, record) = try store.placement.create(task: task, kind: .at(dueMs), now: RFC3339.nowMs)
        switch publisher.enqueue(record, checkSize: false) {
        case .success(let delivery): return delivery
        case .failure(let error): throw error
        }
    }

    /// Fire delays so far (due time to acknowledgement), in microseconds.
    public var fireDelaysMicros: [Int64] { store.recentDelays.withLock { $0 } }

    /// For the same fires, due time to when the timer took them, in milliseconds.
    public var takeDelaysMs: [Int64] { store.recentTakeDelays.withLock { $0 } }

    /// Schedules still in the table.
    public var remaining: Int { store.book.read { $0.count } }

    /// Milliseconds since the epoch, as schedules count time.
    public static var nowMs: Int64 { RFC3339.nowMs }

    /// `ms` as RFC 3339 text.
    public static func format(_ ms: Int64) -> String { RFC3339.format(ms) }

    /// A timer table holding `count` one-shot schedules (32-byte message),
    /// alive as long as the returned object: the benchmark measures the heap
    /// while it is held (measured after it is freed, reused pages hide it).
    public static func table(ofOneShots count: Int) -> AnyObject {
        let holder = TableHolder()
        holder.table.assign([0])
        holder.table.markLive(0)
        let now = RFC3339.nowMs
        for index in 0..<count {
            // Error-free: a future one-shot always has a due time.
            guard let schedule = try? Schedule(id: "s-" + UUID().uuidString.lowercased(),
                                               task: TaskSpec(topic: "bench-fired", message: String(repeating: "x", count: 32), key: "k\(index % 100)"),
                                               kind: .at(now + 60_000 + Int64(index)), now: now) else { continue }
            _ = holder.table.apply(.schedule(schedule), partition: 0)
        }
        return holder
    }

    /// Schedules in a table made by `table(ofOneShots:)`.
    public static func count(of table: AnyObject) -> Int { (table as? TableHolder)?.table.count ?? 0 }

    private final class TableHolder {
        var table = ScheduleTable()
    }

    /// The record of a new one-shot schedule of `message` to `target`, due at
    /// `dueMs`, for a schedule topic of `partitions` partitions (its
    /// partition chosen as the daemons choose it): for filling a topic
    /// before a daemon starts.
    public static func oneShotRecord(scheduleTopic: String, partitions: Int, target: String, message: String,
                                     key: String, dueMs: Int64) throws -> OutgoingMessage {
        let placement = SchedulePlacement(topic: scheduleTopic, partitions: partitions, publish: nil)
        return try placement.create(task: TaskSpec(topic: target, message: message, key: key), kind: .at(dueMs), now: RFC3339.nowMs).1
    }
}
