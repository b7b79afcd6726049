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

/// One Kafka record header. Its value is bytes, or nil for a null value
/// (Kafka tells the two apart): kept as they are from consumer to producer,
/// so a dead letter or a forwarded message carries the same headers.
public struct KafkaHeader: Sendable, Equatable, Hashable {
    /// Header name.
    public var name: String
    /// Header value: bytes, or nil for a null value.
    public var value: [UInt8]?
    /// A header with a text value (UTF-8).
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = Array(value.utf8)
    }
    /// A header with a byte value, or a null value.
    public init(name: String, bytes: [UInt8]?) {
        self.name = name
        self.value = bytes
    }
    /// The value as text (invalid UTF-8 replaced), or nil for a null value.
    public var text: String? { value?.utf8String }
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
