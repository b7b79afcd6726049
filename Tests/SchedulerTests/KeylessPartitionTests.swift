import Foundation
import Testing
@testable import Scheduler

/// Messages without a key (the API's keyless posts, keyless emits) are not
/// held on one "sticky" partition: librdkafka's default kept them all on one
/// partition for 2 x linger.ms, which halved keyless posts under load
/// (docs/performance-notes.md). Keyed messages still follow their key's hash.
@Suite("Partitions of messages without a key", .sharesMachine)
struct KeylessPartitionTests {
    @Test("a burst of keyless messages spreads over the partitions; keyed messages keep one partition per key")
    func keylessSpread() async throws {
        let topic = try TestBroker.freshTopic("keyless", partitions: 4)
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 10_000)
        // The topic's partitions known first (messages for an unknown topic
        // wait, then are partitioned together), then a burst enqueued within
        // a millisecond or two: one sticky window would take it all.
        _ = try await producer.send(OutgoingMessage(topic: topic, value: Array("first".utf8)))
        let keyless = (0..<60).map { producer.enqueue(OutgoingMessage(topic: topic, value: Array("m\($0)".utf8))) }
        let keyed = (0..<60).map { producer.enqueue(OutgoingMessage(topic: topic, key: Array("k\($0 % 3)".utf8), value: Array("k\($0)".utf8))) }
        var keylessPartitions: Set<Int32> = []
        for delivery in keyless { keylessPartitions.insert(try await delivery.report().partition) }
        var keyPartitions: [Int: Set<Int32>] = [:]
        for (index, delivery) in keyed.enumerated() { keyPartitions[index % 3, default: []].insert(try await delivery.report().partition) }
        await producer.close(timeoutMs: 5000)
        #expect(keylessPartitions.count >= 3, "60 keyless messages went to partitions \(keylessPartitions.sorted())")
        #expect(keyPartitions.values.allSatisfy { $0.count == 1 }, "each key keeps one partition: \(keyPartitions)")
    }
}
