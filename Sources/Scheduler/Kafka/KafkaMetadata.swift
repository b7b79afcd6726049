import CRdKafka

/// What the cluster reports about one topic.
public struct TopicMetadata: Sendable, Equatable {
    /// Topic name.
    public var name: String
    /// Partition ids, ascending.
    public var partitions: [Int32]
}

enum KafkaMetadata {
    /// Blocking metadata request for `topic` (librdkafka `rd_kafka_metadata`).
    /// Call it on a dedicated thread.
    static func fetch(handle: OpaquePointer, topic: String, timeoutMs: Int) throws -> TopicMetadata {
        guard let rkt = rd_kafka_topic_new(handle, topic, nil) else {
            throw KafkaError(rd_kafka_last_error(), context: "topic '\(topic)'")
        }
        defer { rd_kafka_topic_destroy(rkt) }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(handle, 0, rkt, &metadata, Int32(timeoutMs))
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw KafkaError(err, context: "metadata for '\(topic)'")
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        guard metadata.pointee.topic_cnt > 0 else {
            throw KafkaError(code: RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART.rawValue, message: "topic '\(topic)' not in metadata")
        }
        let info = metadata.pointee.topics[0]
        if info.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(info.err, context: "metadata for '\(topic)'")
        }
        let partitions = (0..<Int(info.partition_cnt)).map { info.partitions[$0].id }.sorted()
        return TopicMetadata(name: topic, partitions: partitions)
    }
}
