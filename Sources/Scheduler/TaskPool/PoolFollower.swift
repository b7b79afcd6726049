import CRdKafka
import Foundation
import Logging

/// Follows the pool topic's partition 0 live, on a dedicated thread: a
/// consumer assigned to it (no group, nothing committed) reads it from the
/// beginning to its end and then every record as it comes, applying each to
/// `state` in offset order. Every daemon runs one, so every daemon shows the
/// same pool; waiters on `state` (requests waiting to read their own write,
/// the publisher catching up) are woken by the record they wait for.
final class PoolFollower: @unchecked Sendable {
    // Safe because the consumer is created, polled and closed on the
    // follower's thread only;
    // `reportedMissingTopic` is used on the follower's thread only.
    let state: WatchedValue<TaskPool>
    let topic: String
    private let bootstrapServers: String
    private let properties: [String: String]
    private let logger: Logger
    private let loop = RetryLoop(name: "pool-follower")
    private var reportedMissingTopic = false

    init(topic: String, capacity: Int, bootstrapServers: String, properties: [String: String], logger: Logger) {
        self.topic = topic
        self.state = WatchedValue(TaskPool(capacity: capacity))
        self.bootstrapServers = bootstrapServers
        self.properties = properties
        self.logger = logger
    }

    private var isRunning: Bool { loop.isRunning }

    /// Starts the follower's thread; it retries every second while the brokers do not answer.
    func start() {
        let (logger, topic) = (logger, topic)
        loop.start({ [self] in try follow() }, onFailure: { error in
            logger.warning("pool topic follower failed, retrying in 1 s: \(error)", metadata: [LogKey.topic: "\(topic)"])
        })
    }

    /// Ends the thread (within one poll) and waits for it. Blocking.
    func stop() {
        loop.stop()
    }

    private func follow() throws {
        var settings = properties
        settings["enable.partition.eof"] = "true"
        // Records written through other daemons should show within a second.
        settings["fetch.wait.max.ms"] = settings["fetch.wait.max.ms"] ?? "100"
        // Assigned, never subscribed: the group id is never used to join or commit.
        let consumer = try KafkaConsumer.make(bootstrapServers: bootstrapServers, groupID: "task-scheduler-pool-follower",
                                              properties: settings)
        defer { consumer.close() }
        let end = try Self.end(of: topic, consumer: consumer, timeoutMs: 5000)
        let resume = state.update { pool -> Int64 in
            pool.startFollowing(end: end)
            return pool.nextOffset
        }
        // After a failure, on from the first record not applied yet.
        try consumer.assign([PartitionOffset(topic: topic, partition: PoolRecord.partition,
                                             offset: resume == 0 ? PartitionOffset.beginning : resume)])
        while isRunning {
            guard let raw = consumer.pollRaw(timeoutMs: 100) else { continue }
            handle(raw.view)
        }
    }

    /// `raw` is the caller's: it destroys the message when this returns.
    private func handle(_ raw: KafkaMessageView) {
        if let error = raw.error {
            if error.code == RD_KAFKA_RESP_ERR__PARTITION_EOF.rawValue {
                state.update { $0.reachedEnd(raw.offset) }
            } else if error.code == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART.rawValue || error.code == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC.rawValue {
                guard !reportedMissingTopic else { return }
                reportedMissingTopic = true
                logger.warning("the pool topic does not exist yet (the first pool write creates it where the brokers allow it; otherwise create it compacted with 1 partition): \(error)",
                               metadata: [LogKey.topic: "\(topic)"])
            } else {
                logger.warning("pool topic follower: \(error)", metadata: [LogKey.topic: "\(topic)"])
            }
            return
        }
        let record: PoolRecord?
        do {
            record = try PoolRecord(key: raw.key.map { Array($0) }, value: Array(raw.payload), offset: raw.offset)
        } catch {
            logger.warning("pool topic: skipping a record: \(error)", metadata: [LogKey.topic: "\(topic)"])
            record = nil
        }
        state.update { $0.apply(record, offset: raw.offset) }
    }

    /// The end (high watermark) of the pool topic's partition; 0 when the
    /// topic does not exist yet. Blocking: on a dedicated thread only.
    static func end(of topic: String, consumer: KafkaConsumer, timeoutMs: Int) throws -> Int64 {
        var low: Int64 = 0
        var high: Int64 = 0
        let err = rd_kafka_query_watermark_offsets(consumer.handle, topic, PoolRecord.partition, &low, &high, Int32(timeoutMs))
        if err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION
            || err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC {
            return 0
        }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "read the end of pool topic '\(topic)'") }
        return high
    }
}
