import CRdKafka

/// An error reported by librdkafka, carrying librdkafka's own code and message.
public struct KafkaError: Error, CustomStringConvertible, Sendable, Equatable {
    /// librdkafka's `rd_kafka_resp_err_t` value (negative: client-side, positive: broker).
    public let code: Int32
    /// librdkafka's text for the error, with any context this project adds in front.
    public let message: String

    /// Creates an error with an explicit code and message.
    public init(code: Int32, message: String) {
        self.code = code
        self.message = message
    }

    init(_ err: rd_kafka_resp_err_t, context: String? = nil) {
        let text = String(cString: rd_kafka_err2str(err))
        self.code = err.rawValue
        self.message = context.map { "\($0): \(text)" } ?? text
    }

    /// The message could not be delivered within `message.timeout.ms`.
    public var isTimeout: Bool {
        code == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT.rawValue || code == RD_KAFKA_RESP_ERR__TIMED_OUT.rawValue
    }

    /// librdkafka's local produce queue is full (`queue.buffering.max.messages`).
    public var isQueueFull: Bool { code == RD_KAFKA_RESP_ERR__QUEUE_FULL.rawValue }

    /// The message is larger than `message.max.bytes`.
    public var isMessageTooLarge: Bool {
        code == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE.rawValue
    }

    /// The group is rebalancing or this member's generation is stale: the
    /// commit was refused and the partitions are about to move.
    public var isRebalance: Bool {
        [RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS, RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION,
         RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID, RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID].map(\.rawValue).contains(code)
    }

    public var description: String { message }

    /// A call on a producer or consumer whose `close` has begun: refused
    /// before it reached librdkafka (`RD_KAFKA_RESP_ERR__STATE`).
    public var isClosed: Bool { code == RD_KAFKA_RESP_ERR__STATE.rawValue }

    /// A produce after the producer's `close` began (e.g. by a worker left
    /// behind at shutdown).
    static func producerClosed(topic: String) -> KafkaError {
        KafkaError(code: RD_KAFKA_RESP_ERR__STATE.rawValue, message: "produce to '\(topic)': the producer is closed (the daemon is stopping)")
    }

    /// `call` on a consumer whose `close` has begun.
    static func consumerClosed(_ call: String) -> KafkaError {
        KafkaError(code: RD_KAFKA_RESP_ERR__STATE.rawValue, message: "\(call): the consumer is closed")
    }
}

/// A librdkafka configuration property was rejected.
public struct KafkaConfigError: Error, CustomStringConvertible, Sendable {
    /// The librdkafka property, e.g. `bootstrap.servers`.
    public let property: String
    /// librdkafka's explanation.
    public let message: String
    public var description: String { "librdkafka property '\(property)': \(message)" }
}
