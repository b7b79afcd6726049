import CRdKafka
import Foundation
import Logging

/// Reads the schedule topic in the daemons' shared consumer group, on a
/// dedicated thread: each assigned partition is read from its beginning
/// (the group never commits) into the `ScheduleBook`, and goes live at its
/// end (`enable.partition.eof`). A revoked partition stops firing at once;
/// the revoke waits (up to `revokeWaitMs`) until its fires in flight have
/// written their state, so the next owner starts from it.
final class ScheduleConsumer: @unchecked Sendable {
    // Safe because `consumer` is created, polled and closed on the loop's
    // thread only, and `reportedMissingTopic` used there only.
    private let store: ScheduleStore
    private let bootstrapServers: String
    private let properties: [String: String]
    private let membership: GroupMembership
    private let group: String
    private let loop = RetryLoop(name: "schedule-consumer")
    /// The missing-topic error was logged (once is enough: it repeats at every metadata refresh).
    private var reportedMissingTopic = false
    /// Longest a revoke waits for fires in flight.
    static let revokeWaitMs = 5000

    /// `membership`: the worker groups' session timeout, assignor and static
    /// membership, so a killed daemon's schedules move as soon as its groups do.
    init(store: ScheduleStore, group: String, bootstrapServers: String, properties: [String: String], membership: GroupMembership = GroupMembership()) {
        self.store = store
        self.group = group
        self.bootstrapServers = bootstrapServers
        self.properties = properties
        self.membership = membership
    }

    private var isRunning: Bool { loop.isRunning }

    /// Starts the consumer thread; it retries every second while the brokers do not answer.
    func start() {
        let logger = store.logger
        let topic = store.topic
        loop.start({ [self] in try consume() }, onFailure: { error in
            logger.warning("schedule consumer failed, retrying in 1 s: \(error)", metadata: [LogKey.topic: "\(topic)"])
        })
    }

    /// Leaves the group (revoking, so fires in flight settle first) and ends the thread.
    func stop() {
        loop.stop()
    }

    private func consume() throws {
        let book = store.book
        let logger = store.logger
        let topic = store.topic
        let handler = RebalanceHandler(
            assigned: { partitions in
                let ids = partitions.filter { $0.topic == topic }.map(\.partition)
                book.update { $0.assign(ids) }
                logger.info("schedule partitions assigned", metadata: [LogKey.partition: "\(ids.sorted())", LogKey.topic: "\(topic)"])
            },
            revoking: { partitions, _ in
                let ids = partitions.filter { $0.topic == topic }.map(\.partition)
                book.update { $0.beginRevoke(ids) }
                let deadline = Date(timeIntervalSinceNow: Double(Self.revokeWaitMs) / 1000)
                let settled = book.wait(until: deadline) { table in ids.allSatisfy { table.inFlight($0) == 0 } ? true : nil }
                if settled == nil {
                    logger.warning("schedule partitions revoked with fires still in flight (a new owner may fire them again)",
                                   metadata: [LogKey.partition: "\(ids.sorted())"])
                }
                book.update { table in for id in ids { table.drop(id) } }
                logger.info("schedule partitions revoked", metadata: [LogKey.partition: "\(ids.sorted())", LogKey.topic: "\(topic)"])
            })
        AssignorChoice.logOnce(properties: properties, logger: logger)
        var settings = membership.properties(group: group, user: properties)
        // Eager whatever the worker groups use: the schedule table takes each
        // assignment as the whole of what this daemon holds (an incremental
        // one would drop the rest), and the group has little to keep working
        // through a rebalance.
        settings["partition.assignment.strategy"] = "range,roundrobin"
        settings["enable.partition.eof"] = "true"
        // Records written by other daemons should reach the owner quickly.
        settings["fetch.wait.max.ms"] = settings["fetch.wait.max.ms"] ?? "100"
        let consumer = try KafkaConsumer.make(bootstrapServers: bootstrapServers, groupID: group, properties: settings, rebalance: handler)
        defer { consumer.close() }
        try consumer.subscribe([topic])
        var lastGauge = ContinuousClock.now
        while isRunning {
            if let raw = consumer.pollRaw(timeoutMs: 100) {
                handle(raw.view)
            }
            if ContinuousClock.now - lastGauge > .seconds(1) {
                lastGauge = .now
                let counts = book.read { $0.countsByKind }
                for kind in ["at", "after", "every", "cron"] {
                    store.metrics.gauge(MetricName.schedules, [("kind", kind)]).record(counts[kind] ?? 0)
                }
            }
        }
    }

    /// `raw` is the caller's: it destroys the message when this returns.
    private func handle(_ raw: KafkaMessageView) {
        let partition = raw.partition
        if let error = raw.error {
            if error.code == RD_KAFKA_RESP_ERR__PARTITION_EOF.rawValue {
                let wasLoading = store.book.update { table -> Bool in
                    defer { table.markLive(partition) }
                    return table.partitions[partition] == .loading
                }
                if wasLoading {
                    store.logger.info("schedule partition read; its schedules fire from here",
                                      metadata: [LogKey.partition: "\(partition)", LogKey.offset: "\(raw.offset)"])
                }
            } else if error.code == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART.rawValue || error.code == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC.rawValue {
                guard !reportedMissingTopic else { return }
                reportedMissingTopic = true
                store.logger.error("the schedule topic does not exist, so no schedule can be stored or fire; create it compacted with [schedules] partitions (\(store.placement.partitions)) partitions, or set [schedules] topic: \(error)",
                                   metadata: [LogKey.topic: "\(store.topic)"])
            } else {
                store.logger.warning("schedule consumer: \(error)", metadata: [LogKey.topic: "\(store.topic)"])
            }
            return
        }
        let record: ScheduleRecord
        do {
            record = try ScheduleRecord(key: raw.key.map { Array($0) }, value: Array(raw.payload), offset: raw.offset)
        } catch {
            store.logger.warning("schedule topic: skipping a record: \(error)", metadata: [LogKey.topic: "\(store.topic)"])
            return
        }
        let again = store.book.update { $0.apply(record, partition: partition) }
        for record in again {
            // A fire's state landed after the cancel's tombstone (cancel
            // again), or a record left out this owner's newer state (merged):
            // written again until acknowledged.
            store.rewrite(record)
        }
    }
}
