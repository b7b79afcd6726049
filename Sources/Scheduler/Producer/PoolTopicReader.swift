import CRdKafka
import Foundation
import Logging

/// Reads the pool topic from its beginning to its current end, once, at start.
///
/// Blocking (librdkafka requests): call it on a dedicated thread only.
enum PoolTopicReader {
    /// The records of the pool topic's partition 0 in offset order; empty when
    /// the topic does not exist yet. Records this daemon did not write are
    /// logged and skipped. Throws a `KafkaError` when the brokers do not
    /// answer within `timeoutMs`.
    static func read(topic: String, bootstrapServers: String, properties: [String: String],
                     timeoutMs: Int, logger: Logger) throws -> [PoolRecord] {
        // A consumer does not create the topic it reads (allow.auto.create.topics
        // defaults to false for consumers).
        let consumer = try KafkaConsumer.make(
            bootstrapServers: bootstrapServers, groupID: "task-scheduler-pool-reader", properties: properties)
        defer { consumer.close() }
        var low: Int64 = 0
        var high: Int64 = 0
        let err = rd_kafka_query_watermark_offsets(consumer.handle, topic, PoolRecord.partition, &low, &high, Int32(timeoutMs))
        if err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION
            || err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC {
            return []
        }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "read the end of pool topic '\(topic)'") }
        guard high > low else { return [] }
        try consumer.assign([PartitionOffset(topic: topic, partition: PoolRecord.partition, offset: PartitionOffset.beginning)])
        var records: [PoolRecord] = []
        let deadline = ContinuousClock.now + .milliseconds(timeoutMs)
        var next = low
        while next < high {
            guard ContinuousClock.now < deadline else {
                throw KafkaError(code: RD_KAFKA_RESP_ERR__TIMED_OUT.rawValue,
                                 message: "reading pool topic '\(topic)': at offset \(next) of \(high) after \(timeoutMs) ms")
            }
            guard let message = try consumer.poll(timeoutMs: 100) else { continue }
            next = message.offset + 1
            do {
                records.append(try PoolRecord(key: message.key, value: message.value, offset: message.offset))
            } catch {
                logger.warning("pool topic: skipping a record: \(error)", metadata: [LogKey.topic: "\(topic)"])
            }
        }
        return records
    }
}
