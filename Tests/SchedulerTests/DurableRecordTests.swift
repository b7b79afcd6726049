import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Scheduler

@Suite("Durable records: a failed POST stays failed", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct DurableRecordTests {
    @Test("a POST whose pool record timed out (but landed) is retracted before the daemon stops, though the first tombstones are refused: it never reappears after a restart",
          .timeLimit(.minutes(3)))
    func failedPostNeverReappears() async throws {
        // A broker of its own with two brokers: the pool topic's leader is
        // broker 2, so faults injected there hit only pool records.
        let broker = try EmbeddedBroker.start(brokers: 2)
        defer { broker.shutdown() }
        var config = testConfig()
        config.kafka.brokers = [broker.bootstrapServers]
        config.producer.timeoutMs = 1000
        let topic = "durable-\(UUID().uuidString.prefix(6))"
        for (name, partitions) in [(config.producer.poolTopic, 1), (config.schedules.topic, 4), (config.cluster.reportsTopic, 1), (topic, 1)]
            + ["A", "B", "C", "D"].map({ ($0, 1) }) {
            try broker.createTopic(name, partitions: partitions)
            for partition in 0..<Int32(partitions) {
                broker.setLeader(topic: name, partition: partition, broker: name == config.producer.poolTopic ? 2 : 1)
            }
        }
        let seed = try await withApplication(config) { client in
            #expect(await eventually { (try? await poolList(client).count) == 4 })
            // The next pool record lands, but its acknowledgement comes after
            // the producer's timeout; the next three tombstones are refused.
            broker.delayNext(.produce, count: 1, milliseconds: 3000, broker: 2)
            broker.failNext(.produce, count: 3, code: 10, broker: 2)  // MESSAGE_TOO_LARGE: not retried
            let response = try await post(client, #"{"topic": "\#(topic)", "message": "told-failed"}"#)
            #expect(response.status.code >= 500, "\(response.status): \(String(buffer: response.body))")
            return try await poolSummary(client)
        }
        // The daemon stopped right after the answer (its retraction still retrying).
        #expect(seed.count >= 4)
        let records = try await readPool(broker, config.producer.poolTopic)
        #expect(records.contains { $0.value.utf8String.contains("told-failed") }, "the record landed (the case being tested)")
        let after = try await withApplication(config) { client in
            #expect(await eventually { (try? await poolList(client).count) ?? 0 >= 4 })
            return try await poolSummary(client)
        }
        #expect(!after.contains("\(topic):told-failed"), "the failed POST came back after a restart: \(after)")
        #expect(after.count == 4)
    }

    /// Every record of the one-partition pool topic.
    private func readPool(_ broker: EmbeddedBroker, _ topic: String) async throws -> [ConsumedMessage] {
        let bootstrap = broker.bootstrapServers
        let thread = DedicatedThread(name: "test-pool-reader")
        defer { thread.stop() }
        return try await thread.run {
            let consumer = try KafkaConsumer.make(bootstrapServers: bootstrap, groupID: "reader-\(UUID().uuidString)")
            defer { consumer.close() }
            try consumer.assign([PartitionOffset(topic: topic, partition: 0, offset: PartitionOffset.beginning)])
            var found: [ConsumedMessage] = []
            let deadline = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < deadline {
                if let message = try consumer.poll(timeoutMs: 100) { found.append(message) }
            }
            return found
        }
    }
}
