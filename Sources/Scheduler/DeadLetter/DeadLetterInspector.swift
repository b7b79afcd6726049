import CRdKafka
import Foundation

/// One dead-letter topic, as `GET /dlq` lists it.
public struct DeadLetterTopicView: Sendable, Codable, Equatable {
    /// The dead-letter topic.
    public var topic: String
    /// The groups that write to it and the topics their dead letters come from.
    public var groups: [String]
    public var source_topics: [String]
    /// Dead letters held: the sum over partitions of end minus start offset.
    public var messages: Int64
    /// Per partition: `[partition, start offset, end offset]`.
    public var partitions: [[Int64]]
    /// The newest dead letter's `dlq.error` header and when it was written
    /// (milliseconds since the epoch); nil when the topic is empty.
    public var last_error: String?
    public var last_at_ms: Int64?
}

/// Which dead-letter topics the configured groups write to: a plain rule
/// over the config (one entry per topic, the groups and sources merged).
enum DeadLetterTopics {
    static func of(_ groups: [GroupConfig]) -> [(topic: String, groups: [String], sources: [String])] {
        var order: [String] = []
        var found: [String: (groups: [String], sources: [String])] = [:]
        for group in groups {
            for source in group.topics {
                let topic = DeadLetter.topic(for: source, group: group)
                if found[topic] == nil { order.append(topic) }
                var entry = found[topic] ?? ([], [])
                if !entry.groups.contains(group.name) { entry.groups.append(group.name) }
                if !entry.sources.contains(source) { entry.sources.append(source) }
                found[topic] = entry
            }
        }
        return order.map { ($0, found[$0]!.groups, found[$0]!.sources) }
    }
}

/// Reads the dead-letter topics' sizes and newest dead letter for `GET /dlq`.
/// librdkafka's calls here block (metadata, watermarks, fetch): they run on
/// the inspector's own thread, one request at a time.
final class DeadLetterInspector: Sendable {
    private let thread = DedicatedThread(name: "dlq-inspector")
    private let bootstrapServers: String
    private let properties: [String: String]
    private let timeoutMs: Int

    init(bootstrapServers: String, properties: [String: String], timeoutMs: Int) {
        self.bootstrapServers = bootstrapServers
        self.properties = properties
        self.timeoutMs = timeoutMs
    }

    func inspect(_ groups: [GroupConfig]) async throws -> [DeadLetterTopicView] {
        try await thread.run { [self] in try inspectNow(groups) }
    }

    private func inspectNow(_ groups: [GroupConfig]) throws -> [DeadLetterTopicView] {
        // No subscription, no commits: the group id is only required by librdkafka.
        let consumer = try KafkaConsumer.make(bootstrapServers: bootstrapServers, groupID: "task-scheduler-dlq-inspector", properties: properties)
        defer { consumer.close() }
        return try DeadLetterTopics.of(groups).map { entry in
            var view = DeadLetterTopicView(topic: entry.topic, groups: entry.groups, source_topics: entry.sources, messages: 0, partitions: [])
            // A topic nothing was dead-lettered to yet may not exist: empty.
            guard let metadata = try? KafkaMetadata.fetch(handle: consumer.handle, topic: entry.topic, timeoutMs: timeoutMs) else { return view }
            var newest: [PartitionOffset] = []
            for partition in metadata.partitions {
                var low: Int64 = 0
                var high: Int64 = 0
                let err = rd_kafka_query_watermark_offsets(consumer.handle, entry.topic, partition, &low, &high, Int32(timeoutMs))
                if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "the offsets of '\(entry.topic)' [\(partition)]") }
                view.partitions.append([Int64(partition), low, high])
                view.messages += high - low
                if high > low { newest.append(PartitionOffset(topic: entry.topic, partition: partition, offset: high - 1)) }
            }
            if let last = try newestMessage(newest, consumer) {
                view.last_error = last.headers.last { $0.name == DeadLetter.Header.error }?.text
                view.last_at_ms = last.timestampMs
            }
            return view
        }
    }

    /// The latest-written of the messages at `positions` (each partition's last).
    private func newestMessage(_ positions: [PartitionOffset], _ consumer: KafkaConsumer) throws -> ConsumedMessage? {
        guard !positions.isEmpty else { return nil }
        try consumer.assign(positions)
        var pending = Set(positions.map(\.partition))
        var newest: ConsumedMessage?
        let deadline = ContinuousClock.now + .milliseconds(timeoutMs)
        while !pending.isEmpty && ContinuousClock.now < deadline {
            guard let message = try consumer.poll(timeoutMs: 100), pending.remove(message.partition) != nil else { continue }
            if newest.map({ message.timestampMs > $0.timestampMs }) ?? true { newest = message }
        }
        return newest
    }
}
