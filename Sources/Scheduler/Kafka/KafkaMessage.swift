/// A message to publish.
public struct OutgoingMessage: Sendable, Equatable {
    /// Destination topic.
    public var topic: String
    /// Partition key; messages with one key go to one partition, in order.
    public var key: [UInt8]?
    /// Message body.
    public var value: [UInt8]
    /// Kafka record headers, in order.
    public var headers: [KafkaHeader]
    /// The partition to write to; nil (the default): the partitioner picks it from the key.
    public var partition: Int32?
    /// True: the record's value is null (a tombstone in a compacted topic), `value` is ignored.
    public var isTombstone = false

    /// Creates a message.
    public init(topic: String, key: [UInt8]? = nil, value: [UInt8], headers: [KafkaHeader] = [], partition: Int32? = nil) {
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
        self.partition = partition
    }

    /// A tombstone: `key` with a null value, which compaction removes `key` for.
    public static func tombstone(topic: String, key: [UInt8], partition: Int32? = nil) -> OutgoingMessage {
        var message = OutgoingMessage(topic: topic, key: key, value: [], partition: partition)
        message.isTombstone = true
        return message
    }
}

/// One Kafka record header. Values are bytes in Kafka; this project uses UTF-8 text.
public struct KafkaHeader: Sendable, Equatable, Hashable {
    /// Header name.
    public var name: String
    /// Header value.
    public var value: String
    /// Creates a header.
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// Where the broker stored a message it acknowledged.
public struct DeliveryReport: Sendable, Equatable {
    /// Topic the message went to.
    public var topic: String
    /// Partition chosen by the partitioner.
    public var partition: Int32
    /// Offset the broker assigned.
    public var offset: Int64
}

/// A message read from Kafka.
public struct ConsumedMessage: Sendable, Equatable {
    /// Source topic.
    public var topic: String
    /// Source partition.
    public var partition: Int32
    /// Offset within the partition.
    public var offset: Int64
    /// Partition key, if any.
    public var key: [UInt8]?
    /// Message body.
    public var value: [UInt8]
    /// Record headers, in order.
    public var headers: [KafkaHeader]
    /// Record timestamp in milliseconds since the epoch (CreateTime or LogAppendTime), or -1.
    public var timestampMs: Int64
}

extension Array where Element == UInt8 {
    /// The bytes as text, replacing invalid UTF-8.
    var utf8String: String { String(decoding: self, as: UTF8.self) }
}
