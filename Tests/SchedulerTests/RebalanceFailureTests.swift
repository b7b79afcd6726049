import Foundation
import Testing
@_spi(Benchmark) @testable import Scheduler

/// `RebalanceHandler` when librdkafka refuses an assignment call (injected
/// through its test seam, by topic): the feeds made for a failed assign are
/// torn down, nothing is read from partitions not assigned, and the log
/// names the partition set.
@Suite("Rebalance: failed assign and unassign calls", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct RebalanceFailureTests {
    private func makeRuntime(topic: String, strategy: String, capture: LogCapture) async throws -> (GroupRuntime, KafkaProducer) {
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": """
            function process(msg) scheduler.log("notice", "seen " .. msg.partition .. " " .. msg.offset) end
            """])
        let catalog = try await ScriptCatalog.load(directory: scripts, limits: .standard, needsProcess: true, logger: quietLogger)
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 5000)
        let publisher = TaskPublisher(producer: producer, maxMessageBytes: 1_000_000, logger: quietLogger, metrics: SchedulerMetrics(), topicCreator: nil)
        let runtime = try await GroupRuntime.make(
            group: GroupConfig(name: "rebalance-fail-\(UUID().uuidString.prefix(6))", topics: [topic], workers: 2, sliceMs: 100),
            bootstrapServers: TestBroker.shared.bootstrapServers,
            properties: ["partition.assignment.strategy": strategy, "session.timeout.ms": "3000", "heartbeat.interval.ms": "500"],
            publisher: publisher, catalog: catalog, logger: capture.logger,
            grace: ShutdownGrace(stop: .seconds(2), close: .seconds(2)))
        return (runtime, producer)
    }

    @Test("an assign the client refuses: the failure names the partitions, their feeds are torn down, nothing of them is read",
          .timeLimit(.minutes(2)), arguments: ["cooperative-sticky", "range"])
    func failedAssign(strategy: String) async throws {
        let topic = try TestBroker.freshTopic("assign-fail", partitions: 2)
        try await publishKeyed(topic: topic, count: 20, keys: 4)
        RebalanceHandler.injectedFailures.withLock { $0[topic] = .init(assign: 1) }
        defer { _ = RebalanceHandler.injectedFailures.withLock { $0.removeValue(forKey: topic) } }
        let capture = LogCapture()
        let (runtime, producer) = try await makeRuntime(topic: topic, strategy: strategy, capture: capture)
        try runtime.startConsuming()
        let failure = { capture.all.first { $0.message.hasPrefix("assigning ") && $0.message.contains("failed") } }
        #expect(await eventually(timeout: .seconds(60)) { failure() != nil })
        let message = failure()?.message ?? ""
        #expect(message.contains("\(topic)[0]") && message.contains("\(topic)[1]") && message.contains("injected failure"), "\(message)")
        #expect(failure()?.metadata[LogKey.group] != nil, "logged with the group's name")
        // The feeds made in `assigned` are gone again, and librdkafka fetches nothing.
        #expect(await eventually { (await runtime.snapshot()?.partitions.isEmpty) ?? false })
        let assignment = try await offThePool { runtime.consumer.assignment() }
        #expect(assignment == [], "\(String(describing: assignment))")
        // 20 messages wait in the partitions; with them assigned, `seen` lines
        // come within a poll. None may: the partitions are not this member's to read.
        try await Task.sleep(for: .seconds(2))
        #expect(capture.lines(startingWith: "seen ").isEmpty, "\(capture.lines(startingWith: "seen ").map(\.message).prefix(3))")
        // Dropping them holds no commits (no rebalance round follows a
        // refused assign call: RotationFaultTests), so shutdown does not wait
        // 2 x session.timeout.ms (6 s) for a final commit.
        let stopping = ContinuousClock.now
        await runtime.shutdown()
        #expect(ContinuousClock.now - stopping < .seconds(5), "shutdown took \(ContinuousClock.now - stopping)")
        await producer.close(timeoutMs: 1000)
    }

    @Test("an unassign the client refuses once is tried again, and the log names the partitions", .timeLimit(.minutes(2)))
    func failedUnassignRetried() async throws {
        let topic = try TestBroker.freshTopic("unassign-fail", partitions: 2)
        try await publishKeyed(topic: topic, count: 4, keys: 4)
        let capture = LogCapture()
        let (runtime, producer) = try await makeRuntime(topic: topic, strategy: "cooperative-sticky", capture: capture)
        try runtime.startConsuming()
        #expect(await eventually(timeout: .seconds(60)) { capture.lines(startingWith: "seen ").count >= 4 })
        // Leaving the group at shutdown revokes both partitions: the first unassign fails.
        RebalanceHandler.injectedFailures.withLock { $0[topic] = .init(unassign: 1) }
        defer { _ = RebalanceHandler.injectedFailures.withLock { $0.removeValue(forKey: topic) } }
        await runtime.shutdown()
        await producer.close(timeoutMs: 1000)
        let warning = capture.all.first { $0.message.hasPrefix("giving up ") }
        #expect(warning?.message.contains("\(topic)[0]") == true && warning?.message.contains("\(topic)[1]") == true, "\(capture.all.map(\.message))")
        #expect(warning?.message.contains("trying again") == true)
        #expect(!capture.all.contains { $0.message.contains("failed twice") }, "the second try went through")
        #expect(RebalanceHandler.injectedFailures.withLock { $0[topic]?.unassign } == 0, "the injected failure was used")
    }
}

/// Where `rd_kafka_consumer_close` (and the rebalance callback it runs)
/// happens: on the owner's thread when it closes, on `consumer-close` when
/// the last reference is dropped elsewhere, never on a concurrency-pool thread.
@Suite("Consumer close runs on a known thread", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct ConsumerCloseThreadTests {
    /// Closed handles and the threads they were closed on.
    private static let closedOn = LockedValue<[UInt: String]>([:])

    private static func observeCloses() {
        KafkaConsumer.closeObserver.withLock { observer in
            if observer == nil { observer = { id, thread in ConsumerCloseThreadTests.closedOn.withLock { $0[id] = thread } } }
        }
    }

    /// A consumer in a fresh group on `topic`, polled on `thread` until its
    /// first assignment; its revoke callbacks record their thread in `revokedOn`.
    private func assignedConsumer(topic: String, on thread: DedicatedThread, revokedOn: LockedValue<[String]>) async throws -> KafkaConsumer {
        let assigned = LockedValue(false)
        let handler = RebalanceHandler(
            assigned: { _ in assigned.withLock { $0 = true } },
            revoking: { _, _ in revokedOn.withLock { $0.append(KafkaConsumer.currentThreadName()) } })
        let consumer = try KafkaConsumer.make(bootstrapServers: TestBroker.shared.bootstrapServers, groupID: "close-thread-\(UUID().uuidString.prefix(6))",
                                              rebalance: handler)
        try consumer.subscribe([topic])
        let joined = try await thread.run { () -> Bool in
            let deadline = ContinuousClock.now + .seconds(60)
            while !assigned.withLock({ $0 }) && ContinuousClock.now < deadline { consumer.pollRaw(timeoutMs: 100)?.destroy() }
            return assigned.withLock { $0 }
        }
        try #require(joined, "the consumer got its assignment")
        return consumer
    }

    @Test("close() by the owner runs the close and the last revoke on the owner's thread", .timeLimit(.minutes(2)))
    func ownerCloses() async throws {
        Self.observeCloses()
        let topic = try TestBroker.freshTopic("close-owner", partitions: 1)
        let owner = DedicatedThread(name: "owner-close")
        defer { owner.stop() }
        let revokedOn = LockedValue<[String]>([])
        let consumer = try await assignedConsumer(topic: topic, on: owner, revokedOn: revokedOn)
        let id = consumer.handleID
        Self.closedOn.withLock { $0[id] = nil }  // the address of a handle closed before
        try await owner.run { consumer.close() }
        #expect(Self.closedOn.withLock { $0[id] } == "owner-close")
        #expect(revokedOn.withLock { $0 } == ["owner-close"])
    }

    @Test("a consumer whose last reference goes in a Swift task is closed on thread consumer-close, its revoke callback too", .timeLimit(.minutes(2)))
    func droppedOnThePool() async throws {
        Self.observeCloses()
        let topic = try TestBroker.freshTopic("close-dropped", partitions: 1)
        let owner = DedicatedThread(name: "owner-drop")
        defer { owner.stop() }
        let revokedOn = LockedValue<[String]>([])
        let box = LockedValue<KafkaConsumer?>(try await assignedConsumer(topic: topic, on: owner, revokedOn: revokedOn))
        let id = try #require(box.withLock { $0?.handleID })
        // The id is the handle's address: a consumer closed before may have had it.
        Self.closedOn.withLock { $0[id] = nil }
        // The last reference is dropped on a concurrency-pool thread.
        let dropper = await Task.detached { () -> String in
            box.withLock { $0 = nil }
            return KafkaConsumer.currentThreadName()
        }.value
        #expect(await eventually(timeout: .seconds(30)) { Self.closedOn.withLock { $0[id] } != nil })
        #expect(dropper != "consumer-close")
        #expect(Self.closedOn.withLock { $0[id] } == "consumer-close", "dropped on \(dropper)")
        #expect(await eventually { !revokedOn.withLock { $0 }.isEmpty })
        #expect(revokedOn.withLock { $0 } == ["consumer-close"])
    }
}
