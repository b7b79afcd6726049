import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@_spi(Benchmark) @testable import Scheduler

@Suite("Topic policy ([api] topics, max_topics)", .sharesMachine)
struct TopicPolicyTests {
    @Test("patterns: '*' matches any run of characters, the rest exactly", arguments: [
        ("orders", "orders", true), ("orders", "orders2", false), ("orders.*", "orders.eu", true), ("orders.*", "orders.", true),
        ("orders.*", "orders", false), ("*.dlq", "A.dlq", true), ("*.dlq", "A.dlq2", false), ("a*b*c", "a-x-b-y-c", true),
        ("a*b*c", "a-c-b", false), ("*", "anything", true), ("ab*ba", "aba", false), ("ab*ba", "abba", true),
    ])
    func matching(pattern: String, topic: String, matches: Bool) {
        #expect(TopicPolicy.matches(topic, pattern) == matches)
    }

    @Test("the allow-list and the bound on distinct topics; the daemon's own topics always pass", arguments: [
        // (topic, known, tracked, the problem names)
        ("orders.eu", false, 0, nil as String?), ("billing", false, 0, "[api] topics"), ("pool", false, 0, nil),
        ("A.dlq", false, 5, nil), ("orders.eu", true, 5, nil), ("orders.us", false, 2, nil), ("orders.us", false, 3, "[api] max_topics"),
        ("pool", false, 3, nil),
    ])
    func rules(topic: String, known: Bool, tracked: Int, names: String?) {
        let policy = TopicPolicy(patterns: ["orders.*"], internalPatterns: ["pool", "*.dlq"], maxTopics: 3)
        let problem = policy.problem(topic, known: known, tracked: tracked)
        #expect(problem.map { $0.contains(names ?? "-") } ?? (names == nil), "\(problem ?? "allowed")")
    }

    @Test("config: [api] topics and max_topics are read and checked, errors name the key")
    func config() throws {
        let config = try ConfigLoader.parse("[api]\ntopics = [\"orders.*\", \"A\"]\nmax_topics = 50\n", file: "test.toml")
        #expect(config.api.topics == ["orders.*", "A"])
        #expect(config.api.maxTopics == 50)
        #expect(TopicPolicy(config).internalPatterns.contains("*.dlq"))
        for (text, key) in [("[api]\ntopics = [\"bad topic\"]", "api.topics"), ("[api]\nmax_topics = 0", "api.max_topics")] {
            #expect { try ConfigLoader.parse(text, file: "test.toml") } throws: { "\($0)".contains(key) }
        }
    }
}

@Suite("Client-controlled growth", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct ClientGrowthTests {
    @Test("posting many distinct topics: past [api] max_topics a new topic gets 400 naming the key; /metrics and the daemon's memory stay bounded",
          .timeLimit(.minutes(3)))
    func manyTopicsBounded() async throws {
        var config = testConfig()
        config.api.maxTopics = 20
        let prefix = "growth-\(UUID().uuidString.prefix(6))"
        let (sizes, refusals, allowListed, growth) = try await withApplication(config) { client in
            var sizes: [Int] = []
            var refusals: [String] = []
            for index in 0..<300 {
                let response = try await post(client, #"{"topic": "\#(prefix)-\#(index)", "message": "m", "once": true}"#)
                if response.status == .badRequest { refusals.append(errorText(response) ?? "") }
                if index % 50 == 49 {
                    sizes.append(String(buffer: try await client.execute(uri: "/metrics", method: .get).body).utf8.count)
                }
            }
            // The daemon runs in this process: its memory across a second,
            // larger batch of new names (all past the bound) must not grow.
            let before = try #require(processMemoryMiB(getpid()))
            for index in 300..<1300 {
                let response = try await post(client, #"{"topic": "\#(prefix)-\#(index)", "message": "m", "once": true}"#)
                if response.status == .badRequest { refusals.append(errorText(response) ?? "") }
            }
            let after = try #require(processMemoryMiB(getpid()))
            return (sizes, refusals, try await post(client, #"{"topic": "\#(prefix)-0", "message": "m", "once": true}"#).status,
                    (before.rss, after.rss))
        }
        print("/metrics size after every 50 distinct topics (max_topics 20): \(sizes) bytes; \(refusals.count) refused; RSS \(growth.0) MiB before 1000 more distinct topics, \(growth.1) MiB after")
        // The pool topic, the reports topic and the first posted topics fill
        // the 20; from then on every new topic is refused.
        #expect(refusals.count >= 1300 - 20)
        #expect(growth.1 - growth.0 < 8, "RSS grew from \(growth.0) to \(growth.1) MiB over 1000 refused topic names")
        #expect(refusals.allSatisfy { $0.contains("[api] max_topics") }, "\(refusals.prefix(1))")
        #expect(allowListed == .ok, "a topic already tracked still works")
        // Bounded: once the bound is reached only counts change (a few
        // digits); each tracked topic adds series of ~100 bytes.
        #expect(sizes.count == 6 && sizes[5] - sizes[1] < 1000, "\(sizes)")
    }

    @Test("[schedules] max_schedules holds for concurrent posts and for scheduler.schedule in scripts: past it 409 / a script error naming the key",
          .timeLimit(.minutes(3)))
    func maxSchedulesAtomic() async throws {
        let topic = try TestBroker.freshTopic("max-sched", partitions: 1)
        var config = schedulingConfig()
        config.schedules.maxSchedules = 5
        let scripts = try makeScripts(["generate.lua": """
            tasks = {}
            function on_task(task)
              if task.message == "from-script" then
                local ok, err = pcall(scheduler.schedule, {topic = task.topic, message = "s", after = "1h"})
                return nil, ok and "scheduled" or tostring(err)
              end
              return task
            end
            function generate() return nil end
            """])
        let (statuses, scriptAnswer) = try await withApplication(config, scripts: scripts) { client in
            #expect(try await eventually { try await schedulesLive(client) })
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<20 {
                    group.addTask { try await post(client, #"{"topic": "\#(topic)", "message": "m\#(index)", "after": "1h"}"#).status.code }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            let answer = try await post(client, #"{"topic": "\#(topic)", "message": "from-script"}"#)
            return (statuses, errorText(answer) ?? "")
        }
        #expect(statuses.filter { $0 == 200 }.count == 5, "\(statuses.sorted())")
        #expect(statuses.filter { $0 == 409 }.count == 15, "\(statuses.sorted())")
        #expect(scriptAnswer.contains("[schedules] max_schedules"), "\(scriptAnswer)")
    }

    @Test("[schedules] max_schedules holds for creations that wait on the broker at the same time", .timeLimit(.minutes(2)))
    func maxSchedulesConcurrent() async throws {
        // The test client sends one request at a time: create directly.
        let topic = try TestBroker.freshTopic("max-sched-rig", partitions: 2)
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 5000)
        let publisher = TaskPublisher(producer: producer, maxMessageBytes: 1_000_000, logger: quietLogger, metrics: SchedulerMetrics(), topicCreator: nil)
        let rig = ScheduleRig(topic: topic, group: topic, partitions: 2, maxSchedules: 5,
                              bootstrapServers: TestBroker.shared.bootstrapServers, publisher: publisher, logger: quietLogger)
        rig.start()
        #expect(await eventually(timeout: .seconds(60)) { rig.isLive })
        let outcomes = await withTaskGroup(of: String.self) { group in
            for index in 0..<20 {
                group.addTask {
                    do {
                        _ = try await rig.store.create(task: TaskSpec(topic: topic, message: "m\(index)"), kind: .after(ms: 3_600_000, due: RFC3339.nowMs + 3_600_000))
                        return "created"
                    } catch {
                        return "\(error)"
                    }
                }
            }
            return await group.reduce(into: [String]()) { $0.append($1) }
        }
        let stopper = DedicatedThread(name: "rig-stop")
        try await stopper.run { rig.stop() }
        stopper.stop()
        await producer.close(timeoutMs: 1000)
        #expect(outcomes.filter { $0 == "created" }.count == 5, "\(outcomes)")
        #expect(outcomes.filter { $0.contains("[schedules] max_schedules") }.count == 15)
    }
}

@Suite("HTTP metrics labels", .sharesMachine)
struct HTTPMetricsLabelTests {
    @Test("a method nobody uses shares the label 'other', so clients cannot grow the series", arguments: [
        ("GET", "GET"), ("DELETE", "DELETE"), ("FROB", "other"), ("X-\(UUID().uuidString)", "other"),
    ])
    func methodLabel(method: String, label: String) throws {
        let parsed = try #require(HTTPRequest.Method(method))
        #expect(HTTPMetricsMiddleware<BasicRequestContext>.methodLabel(parsed) == label)
    }
}

@Suite("Lag gauges follow the assignment", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct LagGaugeTests {
    /// The partitions with a `scheduler_partition_lag` series of `group`.
    private func lagPartitions(_ metrics: SchedulerMetrics, group: String) -> Set<String> {
        Set(metrics.render().split(separator: "\n").filter { $0.hasPrefix(MetricName.lag + "{") && $0.contains("group=\"\(group)\"") }
            .compactMap { line in line.range(of: #"partition="[0-9]+""#, options: .regularExpression).map { String(line[$0]) } })
    }

    @Test("a partition that leaves this daemon loses its lag series (a sum over daemons counts it once)", .timeLimit(.minutes(2)))
    func lagRemovedOnRevoke() async throws {
        let topic = try TestBroker.freshTopic("lag", partitions: 4)
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": seenProcessScript])
        let metrics = SchedulerMetrics()
        let catalog = try await ScriptCatalog.load(directory: scripts, limits: .standard, needsProcess: true, logger: quietLogger, events: metrics)
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 5000)
        let publisher = TaskPublisher(producer: producer, maxMessageBytes: 1_000_000, logger: quietLogger, metrics: metrics, topicCreator: nil)
        let group = "lag-\(UUID().uuidString.prefix(6))"
        let runtime = try await GroupRuntime.make(
            group: GroupConfig(name: group, topics: [topic], workers: 1, sliceMs: 50),
            bootstrapServers: TestBroker.shared.bootstrapServers, properties: ["session.timeout.ms": "6000", "heartbeat.interval.ms": "500"],
            publisher: publisher, catalog: catalog, metrics: metrics, logger: quietLogger)
        try runtime.startConsuming()
        #expect(await eventually(timeout: .seconds(60)) { lagPartitions(metrics, group: group).count == 4 })

        // A second member takes half of the partitions.
        let assigned = LockedValue<[PartitionOffset]>([])
        let other = try KafkaConsumer.make(
            bootstrapServers: TestBroker.shared.bootstrapServers, groupID: group,
            properties: ["partition.assignment.strategy": GroupRuntime.defaultAssignmentStrategy,
                         "session.timeout.ms": "6000", "heartbeat.interval.ms": "500"],
            rebalance: RebalanceHandler(assigned: { partitions in assigned.withLock { $0 += partitions } }, revoking: { _, _ in }))
        try other.subscribe([topic])
        let poller = DedicatedThread(name: "lag-other")
        let stop = LockedValue(false)
        poller.submit {
            while !stop.withLock({ $0 }) { if let message = other.pollRaw(timeoutMs: 100) { message.destroy() } }
        }
        let moved = await eventually(timeout: .seconds(60)) { !assigned.withLock { $0 }.isEmpty }
        #expect(moved)
        let theirs = Set(assigned.withLock { $0 }.map { "partition=\"\($0.partition)\"" })
        // Ours keep their series; theirs lose it (the tick would otherwise keep their last value).
        let settled = await eventually(timeout: .seconds(30)) { lagPartitions(metrics, group: group) == Set((0..<4).map { "partition=\"\($0)\"" }).subtracting(theirs) }
        #expect(settled, "lag series \(lagPartitions(metrics, group: group)), the other member holds \(theirs)")
        stop.withLock { $0 = true }
        try await poller.run { other.close() }
        poller.stop()
        await runtime.shutdown()
        await producer.close(timeoutMs: 1000)
    }
}

extension ClientGrowthTests {
    @Test("scheduler.schedule outside process(): records waiting for the broker stop at [scripts] max_pending_records, and count against max_schedules until stored",
          .timeLimit(.minutes(2)))
    func scriptRecordsBounded() async throws {
        let topic = try TestBroker.freshTopic("pending-rec", partitions: 1)
        var config = schedulingConfig()
        config.schedules.maxSchedules = 8
        config.scripts.maxPendingRecords = 5
        // Acknowledgements come 300 ms after a record is written at the
        // earliest: one call writes its records before any is acknowledged.
        config.kafka.properties["linger.ms"] = "300"
        let scripts = try makeScripts(["generate.lua": """
            tasks = {}
            function on_task(task)
              local made, first = 0, nil
              for i = 1, 50 do
                local ok, err = pcall(scheduler.schedule, {topic = task.topic, message = "s" .. i, after = "1h"})
                if ok then made = made + 1 elseif not first then first = tostring(err) end
              end
              return nil, "made " .. made .. ": " .. tostring(first)
            end
            function generate() return nil end
            """])
        let answers = try await withApplication(config, scripts: scripts) { client in
            #expect(try await eventually { try await schedulesLive(client) })
            return try await Self.postUntilFull(client, topic: topic)
        }
        let made = answers.compactMap { Int($0.dropFirst("made ".count).prefix { $0.isNumber }) }
        print("scheduler.schedule x 50 per on_task call, max_pending_records 5, max_schedules 8: \(made)")
        #expect(answers.first?.hasPrefix("made 5: ") == true && answers.first?.contains("[scripts] max_pending_records") == true, "\(answers.first ?? "")")
        #expect(made.reduce(0, +) == 8, "exactly max_schedules made in all: \(answers)")
        #expect(answers.last?.contains("[schedules] max_schedules") == true, "\(answers.last ?? "")")
    }

    /// Posts tasks (each runs the script's on_task) until one makes no
    /// schedule because of max_schedules; each makes what the two bounds let through.
    private static func postUntilFull(_ client: some TestClientProtocol, topic: String) async throws -> [String] {
        var answers: [String] = []
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let answer = errorText(try await post(client, #"{"topic": "\#(topic)", "message": "m"}"#)) ?? ""
            answers.append(answer)
            if answer.hasPrefix("made 0:") && answer.contains("[schedules] max_schedules") { break }
            // The records of the last call are acknowledged after linger.ms (300 ms).
            try await Task.sleep(for: .milliseconds(100))
        }
        return answers
    }
}
