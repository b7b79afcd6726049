import Foundation
import Testing
@testable import Scheduler

let idleGenerate = "function generate() return nil end"

@Suite("Consumer worker pool: rotation and exact handoff", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct WorkerPoolTests {
    @Test("thousands of keyed messages through many slice boundaries: none lost, none doubled, per-key order kept, every worker took part")
    func exactHandoff() async throws {
        let topic = try TestBroker.freshTopic("pool")
        let total = 20_000
        try await publishKeyed(topic: topic, count: total, keys: 50)
        let capture = LogCapture()
        // 0.1 ms per message: a partition's 5,000 take about 0.5 s, twenty
        // 25 ms slices (a no-op process() would finish one in two or three).
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": seenProcess(busySeconds: 0.0001)])
        // More workers than partitions, so that at each boundary another worker is idle to take over.
        let config = poolConfig(topics: [topic], workers: 6, sliceMs: 25)
        let seen = try await withPoolClient(config, scripts: scripts, logger: capture.logger) { client in
            try await awaitCommittedToEnd(client, messages: total, timeout: .seconds(60))
            return capture.lines(startingWith: "seen ").compactMap(Seen.init)
        }
        #expect(seen.count == total, "processed \(seen.count) of \(total)")
        #expect(Set(seen.map { "\($0.partition):\($0.offset)" }).count == seen.count, "a message was processed twice")
        var lastSequence: [String: Int] = [:]
        for record in seen {
            let sequence = Int(record.payload.split(separator: ":")[1])!
            if let last = lastSequence[record.key] { #expect(sequence == last + 1, "key \(record.key): \(sequence) after \(last)") }
            lastSequence[record.key] = sequence
        }
        let workers = Set(seen.map(\.worker))
        #expect(workers.count == 6, "workers that took part: \(workers.sorted())")
        // Each partition changed hands many times.
        for partition in 0..<4 {
            let holders = seen.filter { $0.partition == Int32(partition) }.map(\.worker)
            let changes = zip(holders, holders.dropFirst()).filter { $0 != $1 }.count
            #expect(changes >= 3, "partition \(partition) changed hands \(changes) times")
        }
    }

    /// Runs 300 messages of one partition through 3 workers with `rotate`
    /// as rotate.lua; each message takes about 0.5 ms, so the 5 ms slices
    /// cross many boundaries. Returns what was processed and the log.
    func runRotation(rotate: (String) -> String) async throws -> (seen: [Seen], capture: LogCapture, group: String) {
        let topic = try TestBroker.freshTopic("rotate", partitions: 1)
        try await publishKeyed(topic: topic, count: 300, keys: 1)
        let capture = LogCapture()
        let group = "rot-\(UUID().uuidString.prefix(6))"
        let scripts = try makeScripts([
            "generate.lua": idleGenerate,
            "process.lua": seenProcess(busySeconds: 0.0005),
            "rotate.lua": rotate(group),
        ])
        let seen = try await withPool(poolConfig(topics: [topic], workers: 3, sliceMs: 5, group: group), scripts: scripts, logger: capture.logger) {
            await eventually { capture.lines(startingWith: "seen ").count >= 300 }
            return capture.lines(startingWith: "seen ").compactMap(Seen.init)
        }
        return (seen, capture, group)
    }

    @Test("rotate() answers are honoured: the named worker keeps the partition")
    func rotateAnswers() async throws {
        let (seen, _, group) = try await runRotation { group in
            "function rotate(ctx) return { worker = \"\(group)-2\", topic = ctx.topic, partition = ctx.partition, slice_ms = 5 } end"
        }
        #expect(seen.map(\.offset) == Array(0..<300).map(Int64.init))
        // From the first slice boundary on, every answer names worker 2: it takes
        // the partition over and keeps it (only the first slice, and the
        // overtime until worker 2 runs, belong to another worker).
        let byWorker = Dictionary(grouping: seen, by: \.worker).mapValues(\.count)
        #expect((byWorker["\(group)-2"] ?? 0) >= 200, "by worker: \(byWorker)")
        let holders = seen.map(\.worker)
        let lastOther = holders.lastIndex { $0 != "\(group)-2" } ?? -1
        #expect(holders[(lastOther + 1)...].count >= 200, "worker 2 did not keep the partition")
    }

    @Test("an invalid rotate() answer is logged and the default policy applies")
    func invalidRotateAnswer() async throws {
        let (seen, capture, _) = try await runRotation { _ in "function rotate(ctx) return { worker = \"nobody\" } end" }
        #expect(seen.map(\.offset) == Array(0..<300).map(Int64.init))
        let warnings = capture.all.filter { $0.message.contains("rotate() answer not used") && $0.message.contains("no worker 'nobody'") }
        #expect(!warnings.isEmpty, "the invalid answer was not reported")
        // The default policy hands the partition round robin: every worker took part.
        #expect(Set(seen.map(\.worker)).count == 3)
    }

    @Test("a failing message is retried, then dead-lettered with headers naming the error, and processing goes on in order")
    func deadLetter() async throws {
        let topic = try TestBroker.freshTopic("dlq", partitions: 1)
        let capture = LogCapture()
        let scripts = try makeScripts([
            "generate.lua": idleGenerate,
            "process.lua": """
                function process(msg)
                  if msg.payload == "poison" then return false, "cannot digest poison" end
                  scheduler.log("notice", "seen " .. msg.partition .. " " .. msg.offset .. " " .. tostring(msg.key) .. " " .. msg.payload)
                end
                """,
        ])
        // Header values are bytes: binary, empty and null values must reach
        // the dead letter as they were.
        let originalHeaders = [KafkaHeader("origin", "test"), KafkaHeader(name: "binary", bytes: [0, 0xFF, 0x80, 0x0A, 0xC3]),
                               KafkaHeader(name: "empty", bytes: []), KafkaHeader(name: "null", bytes: nil)]
        var config = poolConfig(topics: [topic], workers: 2, sliceMs: 50)
        config.groups[0].maxAttempts = 3
        config.groups[0].retryBackoffMs = 5
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 5000)
        for payload in ["before", "poison", "after"] {
            _ = try await producer.send(OutgoingMessage(topic: topic, key: Array("k".utf8), value: Array(payload.utf8), headers: originalHeaders))
        }
        await producer.close(timeoutMs: 1000)
        let seen = try await withPool(config, scripts: scripts, logger: capture.logger) {
            await eventually { capture.lines(startingWith: "seen ").count >= 2 }
            return capture.lines(startingWith: "seen ").compactMap(Seen.init)
        }
        #expect(seen.map(\.payload) == ["before", "after"])
        let failures = capture.all.filter { $0.message.hasPrefix("process() failed (attempt") }
        #expect(failures.count == 3)
        let letters = try await readAll(topic: "\(topic).dlq", partitions: 4, count: 1)
        let letter = try #require(letters.first)
        #expect(letter.value.utf8String == "poison")
        #expect(letter.key?.utf8String == "k")
        #expect(Array(letter.headers.prefix(originalHeaders.count)) == originalHeaders)
        let headers = Dictionary(uniqueKeysWithValues: letter.headers.map { ($0.name, $0.text) })
        #expect(headers["origin"] == "test")
        #expect(headers["dlq.error"] == "cannot digest poison")
        #expect(headers["dlq.attempts"] == "3")
        #expect(headers["dlq.group"] == config.groups[0].name)
        #expect(headers["dlq.offset"] == "1")
        #expect(headers["dlq.topic"] == topic)
        #expect(headers["dlq.worker"]??.hasPrefix(config.groups[0].name) == true)
    }

    @Test("tasks emitted by process() are published before the input counts as done")
    func emitFollowUps() async throws {
        let topic = try TestBroker.freshTopic("emit-in", partitions: 2)
        let output = try TestBroker.freshTopic("emit-out", partitions: 2)
        try await publishKeyed(topic: topic, count: 200, keys: 5)
        let scripts = try makeScripts([
            "generate.lua": idleGenerate,
            "process.lua": """
                function process(msg)
                  scheduler.emit("\(output)", "done " .. msg.payload, msg.key, { source_offset = tostring(msg.offset) })
                end
                """,
        ])
        let messages = try await withPool(poolConfig(topics: [topic], workers: 2, sliceMs: 20), scripts: scripts, logger: quietLogger) {
            try await readAll(topic: output, partitions: 2, count: 200)
        }
        #expect(messages.count == 200)
        #expect(Set(messages.map { $0.value.utf8String }).count == 200)
        #expect(messages.allSatisfy { $0.value.utf8String.hasPrefix("done k") && $0.headers.first?.name == "source_offset" })
    }

    @Test("a clean stop commits: a restart processes only what came after, nothing twice")
    func cleanRestart() async throws {
        let topic = try TestBroker.freshTopic("restart", partitions: 2)
        let group = "restart-\(UUID().uuidString.prefix(6))"
        try await publishKeyed(topic: topic, count: 500, keys: 10)
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": seenProcessScript])
        let config = poolConfig(topics: [topic], workers: 3, sliceMs: 20, group: group)
        let first = LogCapture()
        try await withPool(config, scripts: scripts, logger: first.logger) {
            await eventually { first.lines(startingWith: "seen ").count >= 500 }
        }
        #expect(first.lines(startingWith: "seen ").count == 500)
        try await publishKeyed(topic: topic, count: 100, keys: 10, startSequence: 500)
        let second = LogCapture()
        let seen = try await withPoolClient(config, scripts: scripts, logger: second.logger) { client in
            // 500 + 100 committed: the second run is done, and anything it redid is in its log.
            try await awaitCommittedToEnd(client, messages: 600)
            return second.lines(startingWith: "seen ").compactMap(Seen.init)
        }
        #expect(seen.count == 100)
        #expect(seen.allSatisfy { Int($0.payload.split(separator: ":")[1])! >= 50 })
    }

    @Test("GET /groups shows workers, partitions with holder, committed offset and lag, and handoff gaps")
    func groupsEndpoint() async throws {
        let topic = try TestBroker.freshTopic("groups", partitions: 2)
        try await publishKeyed(topic: topic, count: 2000, keys: 40)
        // About 0.2 ms per message, so the run crosses many 10 ms slice
        // boundaries; three workers for two partitions, so one is always free to take over.
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": """
            function process(msg)
              local started = os.clock()
              while os.clock() - started < 0.0002 do end
            end
            """])
        let config = poolConfig(topics: [topic], workers: 3, sliceMs: 10)
        let app = try await buildApplication(LaunchOptions(config: config, scriptsDirectory: scripts, logger: quietLogger))
        try await app.test(.live) { client in
            var groups: [[String: Any]] = []
            try await eventually {
                let response = try await client.execute(uri: "/groups", method: .get)
                groups = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [[String: Any]] ?? []
                let partitions = groups.first?["partitions"] as? [[String: Any]] ?? []
                return partitions.count == 2 && partitions.reduce(0) { $0 + max(0, $1["committed"] as? Int ?? 0) } == 2000
            }
            let group = try #require(groups.first)
            #expect(group["name"] as? String == config.groups[0].name)
            let workers = try #require(group["workers"] as? [[String: Any]])
            #expect(workers.map { $0["id"] as? String } == (0..<3).map { "\(config.groups[0].name)-\($0)" })
            #expect(workers.reduce(0) { $0 + ($1["messages"] as? Int ?? 0) } == 2000)
            let partitions = try #require(group["partitions"] as? [[String: Any]])
            #expect(partitions.allSatisfy { ($0["lag"] as? Int) == 0 && ($0["committed"] as? Int) == ($0["next_offset"] as? Int) })
            let handoff = try #require(group["handoff"] as? [String: Any])
            #expect((handoff["count"] as? Int ?? 0) > 0)
            #expect(handoff["p99_ms"] is Double)
        }
    }
}
