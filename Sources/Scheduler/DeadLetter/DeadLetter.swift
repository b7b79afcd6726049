/// Builds the dead-letter copy of a message that failed its last attempt: the
/// same key, payload and headers, plus headers naming what happened.
enum DeadLetter {
    /// Header names added to a dead letter.
    enum Header {
        static let error = "dlq.error"
        static let attempts = "dlq.attempts"
        static let group = "dlq.group"
        static let worker = "dlq.worker"
        static let topic = "dlq.topic"
        static let partition = "dlq.partition"
        static let offset = "dlq.offset"
    }

    /// The dead-letter topic for `topic` (`{topic}` in the pattern replaced).
    static func topic(for topic: String, group: GroupConfig) -> String {
        group.deadLetterTopic.replacingOccurrences(of: "{topic}", with: topic)
    }

    static func message(for message: KafkaMessageView, error: String, attempts: Int, group: GroupConfig, worker: String) -> OutgoingMessage {
        var headers: [KafkaHeader] = []
        // Byte for byte; a null value stays null.
        message.forEachHeader { name, value in
            headers.append(KafkaHeader(name: String(cString: name), bytes: value.baseAddress == nil ? nil : Array(value)))
        }
        headers += [
            KafkaHeader(Header.error, String(error.prefix(2000))),
            KafkaHeader(Header.attempts, String(attempts)),
            KafkaHeader(Header.group, group.name),
            KafkaHeader(Header.worker, worker),
            KafkaHeader(Header.topic, message.topic),
            KafkaHeader(Header.partition, String(message.partition)),
            KafkaHeader(Header.offset, String(message.offset)),
        ]
        return OutgoingMessage(
            topic: topic(for: message.topic, group: group),
            key: message.key.map { Array($0) },
            value: Array(message.payload),
            headers: headers)
    }
}
