import CRdKafka
import Foundation
import Logging

/// Follows every partition of one topic live, outside any consumer group,
/// on a dedicated thread: each partition is assigned (from its beginning, or
/// its last few records) and read on at its end for as long as the daemon
/// runs. Every daemon runs one for the schedule topic (the catalog of every
/// schedule) and one for the reports topic (the view of the cluster).
///
/// Nothing is committed and no group is joined, so a follower never moves
/// partitions between daemons and costs the group nothing.
final class TopicTail: @unchecked Sendable {
    // Safe because the consumer is created, polled and closed on the
    // thread only, and `reportedMissing` used there only.
    /// One record as read: `value` nil for a tombstone.
    struct Record: Sendable {
        let partition: Int32
        let offset: Int64
        let key: [UInt8]?
        let value: [UInt8]?
        /// The record's timestamp (ms since the epoch), -1 when unknown.
        let timestampMs: Int64
    }

    /// Where each partition is read from.
    enum Start: Sendable, Equatable {
        /// The first record kept (a compacted topic: every key's latest state).
        case beginning
        /// The last `count` records of each partition (a topic where only recent records matter).
        case tail(Int)

        var offset: Int64 {
            switch self {
            case .beginning: PartitionOffset.beginning
            // librdkafka's RD_KAFKA_OFFSET_TAIL(count).
            case .tail(let count): Int64(RD_KAFKA_OFFSET_TAIL_BASE) - Int64(count)
            }
        }
    }

    private let topic: String
    private let startAt: Start
    private let bootstrapServers: String
    private let properties: [String: String]
    private let logger: Logger
    private let onRecord: @Sendable (Record) -> Void
    private let onEnd: @Sendable (Int32) -> Void
    private let onPartitions: @Sendable ([Int32]) -> Void
    private let loop: RetryLoop
    private var reportedMissing = false

    /// A follower of `topic` on thread `name`. `onRecord` gets each record in
    /// offset order per partition; `onEnd` each time a partition's end is
    /// reached; `onPartitions` the partitions once they are known. All three
    /// run on the follower's thread.
    init(name: String, topic: String, start: Start, bootstrapServers: String, properties: [String: String], logger: Logger,
         onPartitions: @escaping @Sendable ([Int32]) -> Void = { _ in },
         onRecord: @escaping @Sendable (Record) -> Void, onEnd: @escaping @Sendable (Int32) -> Void = { _ in }) {
        self.loop = RetryLoop(name: name)
        self.topic = topic
        self.startAt = start
        self.bootstrapServers = bootstrapServers
        var settings = properties
        settings["enable.partition.eof"] = "true"
        // Records written by other daemons should arrive quickly.
        settings["fetch.wait.max.ms"] = settings["fetch.wait.max.ms"] ?? "100"
        // No group is ever joined: the assignor is never used (and the
        // cooperative one cannot be closed unjoined on librdkafka 2.0.2).
        settings["partition.assignment.strategy"] = "range"
        settings["group.instance.id"] = nil
        self.properties = settings
        self.logger = logger
        self.onPartitions = onPartitions
        self.onRecord = onRecord
        self.onEnd = onEnd
    }

    private var isRunning: Bool { loop.isRunning }

    /// Starts the thread; it retries every second while the brokers do not answer or the topic is missing.
    func start() {
        let (logger, topic) = (logger, topic)
        loop.start({ [self] in try follow() }, onFailure: { error in
            logger.warning("following \(topic) failed, retrying in 1 s: \(error)", metadata: [LogKey.topic: "\(topic)"])
        })
    }

    /// Ends the thread (blocking for at most a poll and a close: call it off the concurrency pool).
    func stop() {
        loop.stop()
    }

    private func follow() throws {
        let consumer = try KafkaConsumer.make(bootstrapServers: bootstrapServers, groupID: "task-scheduler-follower", properties: properties)
        defer { consumer.close() }
        guard let partitions = try partitions(consumer) else { return }
        onPartitions(partitions)
        try consumer.assign(partitions.map { PartitionOffset(topic: topic, partition: $0, offset: startAt.offset) })
        logger.info("following topic", metadata: [LogKey.topic: "\(topic)", LogKey.partition: "\(partitions)"])
        while isRunning {
            guard let raw = consumer.pollRaw(timeoutMs: 100) else { continue }
            handle(raw.view)
        }
    }

    /// The topic's partitions; nil (after waiting a second) while it does not exist.
    private func partitions(_ consumer: KafkaConsumer) throws -> [Int32]? {
        do {
            let metadata = try KafkaMetadata.fetch(handle: consumer.handle, topic: topic, timeoutMs: 5000)
            if !metadata.partitions.isEmpty { return metadata.partitions }
        } catch let error as KafkaError where error.code == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART.rawValue {
            // Reported once below, then retried quietly.
        }
        if !reportedMissing {
            reportedMissing = true
            logger.warning("topic \(topic) does not exist yet; following it once it does", metadata: [LogKey.topic: "\(topic)"])
        }
        loop.pause(seconds: RetryLoop.retryDelay)
        return nil
    }

    /// `raw` is the caller's: it destroys the message when this returns.
    private func handle(_ raw: KafkaMessageView) {
        if let error = raw.error {
            if error.code == RD_KAFKA_RESP_ERR__PARTITION_EOF.rawValue {
                onEnd(raw.partition)
            } else {
                logger.warning("following \(topic): \(error)", metadata: [LogKey.topic: "\(topic)"])
            }
            return
        }
        let value: [UInt8]? = raw.pointer.pointee.payload == nil ? nil : Array(raw.payload)
        onRecord(Record(partition: raw.partition, offset: raw.offset, key: raw.key.map { Array($0) }, value: value,
                        timestampMs: raw.timestampMs))
    }
}
