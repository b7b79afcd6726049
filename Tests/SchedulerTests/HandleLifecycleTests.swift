import Foundation
import Testing
@testable import Scheduler

@Suite("Kafka handles: every call consults the state", .sharesMachine)
struct HandleLifecycleTests {
    @Test("after close a consumer's calls answer with an error (or nothing), never touching the destroyed handle", .timeLimit(.minutes(1)))
    func consumerAfterClose() async throws {
        let topic = try TestBroker.freshTopic("closed-consumer", partitions: 1)
        let thread = DedicatedThread(name: "closed-consumer")
        defer { thread.stop() }
        try await thread.run {
            let consumer = try KafkaConsumer.make(bootstrapServers: TestBroker.shared.bootstrapServers, groupID: "closed-\(UUID().uuidString.prefix(6))")
            let position = PartitionOffset(topic: topic, partition: 0, offset: 0)
            try consumer.assign([position])
            #expect(consumer.state == .running)
            consumer.close()
            #expect(consumer.state == .closed)
            consumer.close()  // twice is fine
            #expect(throws: KafkaError.self) { try consumer.commit([position], async: false) }
            #expect(throws: KafkaError.self) { try consumer.seek(position, timeoutMs: 100) }
            #expect(throws: KafkaError.self) { try consumer.poll(timeoutMs: 10) }
            #expect(throws: KafkaError.self) { try consumer.committed([position], timeoutMs: 100) }
            #expect(throws: KafkaError.self) { try consumer.subscribe([topic]) }
            let polled = consumer.pollRaw(timeoutMs: 10) != nil  // a non-copyable message: compared here, not in #expect
            #expect(!polled)
            #expect(consumer.watermarks(topic: topic, partition: 0) == nil)
            #expect(consumer.partitionQueue(topic: topic, partition: 0) == nil)
            do {
                try consumer.commit([position], async: true)
            } catch let error as KafkaError {
                #expect(error.isClosed && error.message.contains("the consumer is closed"), "\(error)")
            }
        }
    }

    @Test("after close a producer refuses messages at once with an error naming the reason")
    func producerAfterClose() async throws {
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 5000)
        await producer.close(timeoutMs: 1000)
        #expect(producer.state == .closed)
        await producer.close(timeoutMs: 1000)  // twice is fine
        do {
            _ = try await producer.send(OutgoingMessage(topic: "closed-producer", value: [1]))
            Issue.record("a send after close succeeded")
        } catch let error as KafkaError {
            #expect(error.isClosed && error.message.contains("the producer is closed"), "\(error)")
        }
        await #expect(throws: KafkaError.self) { _ = try await producer.metadata(topic: "closed-producer", timeoutMs: 100) }
        #expect(await producer.flush(timeoutMs: 10) == false)
        #expect(producer.outstandingCount == 0)
    }
}
