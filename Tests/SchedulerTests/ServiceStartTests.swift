import Foundation
import Testing
@_spi(Benchmark) @testable import Scheduler

@Suite("Services start their work in run()", .sharesMachine)
struct ServiceStartTests {
    @Test("a group that is made but not started joins nothing: another member of the group is given every partition")
    func madeGroupDoesNotJoin() async throws {
        let topic = try TestBroker.freshTopic("made", partitions: 4)
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": seenProcessScript])
        let catalog = try await ScriptCatalog.load(directory: scripts, limits: .standard, needsProcess: true, logger: quietLogger)
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 5000)
        let publisher = TaskPublisher(producer: producer, maxMessageBytes: 1_000_000, logger: quietLogger, metrics: SchedulerMetrics(), topicCreator: nil)
        let group = "made-\(UUID().uuidString.prefix(6))"
        let runtime = try await GroupRuntime.make(
            group: GroupConfig(name: group, topics: [topic], workers: 2, sliceMs: 50),
            bootstrapServers: TestBroker.shared.bootstrapServers, properties: [:],
            publisher: publisher, catalog: catalog, logger: quietLogger)

        // A plain member of the same group: had the runtime joined, the
        // partitions would be split between the two.
        let assigned = LockedValue<[PartitionOffset]?>(nil)
        let other = try KafkaConsumer.make(
            bootstrapServers: TestBroker.shared.bootstrapServers, groupID: group,
            // The same assignor as the runtime (the mock broker aborts on a group whose members differ).
            properties: ["partition.assignment.strategy": GroupRuntime.defaultAssignmentStrategy],
            rebalance: RebalanceHandler(assigned: { partitions in assigned.withLock { $0 = partitions } }, revoking: { _, _ in }))
        try other.subscribe([topic])
        let poller = DedicatedThread(name: "other-member")
        let got = try await poller.run { () -> [PartitionOffset]? in
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                if let message = other.pollRaw(timeoutMs: 100) { message.destroy() }
                if let partitions = assigned.withLock({ $0 }) { return partitions }
            }
            return nil
        }
        #expect(got?.count == 4, "the other member was given \(got?.count ?? 0) of 4 partitions")
        try await poller.run { other.close() }
        poller.stop()
        #expect(await runtime.snapshot()?.partitions.isEmpty == true)
        await runtime.shutdown()
        await producer.close(timeoutMs: 1000)
    }
}
