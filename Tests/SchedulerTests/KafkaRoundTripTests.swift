import Foundation
import Testing
@testable import Scheduler

@Suite("Kafka layer against the embedded broker", .sharesMachine)
struct KafkaRoundTripTests {
    @Test("messages come back with their key, headers and payload; one key keeps one partition, in order")
    func roundTrip() async throws {
        let topic = try TestBroker.freshTopic("roundtrip")
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 5000)
        var deliveries: [PendingDelivery] = []
        for index in 0..<40 {
            let key = "Key \(index % 4)"
            deliveries.append(producer.enqueue(OutgoingMessage(
                topic: topic, key: Array(key.utf8), value: Array("payload \(index)".utf8),
                headers: [KafkaHeader("header_key", "value \(index)"), KafkaHeader("second", "2")])))
        }
        var reports: [DeliveryReport] = []
        for delivery in deliveries { reports.append(try await delivery.report()) }
        await producer.close(timeoutMs: 5000)
        #expect(reports.allSatisfy { $0.topic == topic && $0.offset >= 0 })

        let messages = try await readAll(topic: topic, count: 40)
        #expect(messages.count == 40)
        var partitionOfKey: [String: Int32] = [:]
        var lastIndexOfKey: [String: Int] = [:]
        for message in messages.sorted(by: { ($0.partition, $0.offset) < ($1.partition, $1.offset) }) {
            let key = try #require(message.key).utf8String
            let index = try #require(Int(message.value.utf8String.dropFirst("payload ".count)))
            #expect(key == "Key \(index % 4)")
            #expect(message.headers == [KafkaHeader("header_key", "value \(index)"), KafkaHeader("second", "2")])
            #expect(message.timestampMs > 0)
            if let partition = partitionOfKey[key] { #expect(partition == message.partition) }
            partitionOfKey[key] = message.partition
            if let last = lastIndexOfKey[key] { #expect(index > last, "per-key order broken for \(key)") }
            lastIndexOfKey[key] = index
        }
    }

    @Test("a broker that cannot be reached fails the send with librdkafka's timeout error")
    func unreachableBrokerTimesOut() async throws {
        let producer = try KafkaProducer.make(bootstrapServers: "127.0.0.1:1", deliveryTimeoutMs: 800)
        await #expect {
            _ = try await producer.send(OutgoingMessage(topic: "nowhere", value: Array("x".utf8)))
        } throws: { error in
            (error as? KafkaError)?.isTimeout == true
        }
        await producer.close(timeoutMs: 100)
    }

    @Test("a bad librdkafka property is reported with its name and librdkafka's message")
    func badProperty() throws {
        #expect {
            _ = try KafkaProducer.make(bootstrapServers: "127.0.0.1:1", deliveryTimeoutMs: 1000, properties: ["no.such.property": "1"])
        } throws: { error in
            let config = error as? KafkaConfigError
            return config?.property == "no.such.property" && config?.message.contains("No such configuration property") == true
        }
    }

    @Test("metadata lists the partitions the embedded broker created")
    func metadata() async throws {
        let topic = try TestBroker.freshTopic("meta", partitions: 3)
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 5000)
        let metadata = try await producer.metadata(topic: topic)
        #expect(metadata.partitions == [0, 1, 2])
        await producer.close(timeoutMs: 1000)
    }
}
