import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Scheduler

/// `GET /tasks` as a list of JSON objects.
func poolList(_ client: some TestClientProtocol) async throws -> [[String: Any]] {
    let response = try await client.execute(uri: "/tasks", method: .get)
    #expect(response.status == .ok, "GET /tasks: \(String(buffer: response.body))")
    return try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [[String: Any]])
}

/// The pool as `topic:message` strings, in order.
func poolSummary(_ client: some TestClientProtocol) async throws -> [String] {
    try await poolList(client).map { "\($0["topic"] ?? "?"):\($0["message"] ?? "?")" }
}

/// Reads `topic` from the beginning until `count` messages satisfying
/// `matching` arrived (or `timeout` passed); returns those messages.
func readMatching(topic: String, partitions: Int = 4, count: Int, timeout: Duration = .seconds(15),
                  _ matching: @escaping @Sendable (ConsumedMessage) -> Bool) async throws -> [ConsumedMessage] {
    let bootstrap = TestBroker.shared.bootstrapServers
    let thread = DedicatedThread(name: "test-reader")
    defer { thread.stop() }
    let deadline = ContinuousClock.now + timeout
    return try await thread.run {
        let consumer = try KafkaConsumer.make(bootstrapServers: bootstrap, groupID: "reader-\(UUID().uuidString)")
        defer { consumer.close() }
        try consumer.assign((0..<partitions).map { PartitionOffset(topic: topic, partition: Int32($0), offset: PartitionOffset.beginning) })
        var found: [ConsumedMessage] = []
        while found.count < count && ContinuousClock.now < deadline {
            if let message = try consumer.poll(timeoutMs: 100), matching(message) { found.append(message) }
        }
        return found
    }
}

/// A `GET /tasks` entry without its `id` (the seed's shape).
func withoutID(_ entry: [String: Any]) -> NSDictionary {
    var entry = entry
    entry["id"] = nil
    return entry as NSDictionary
}

func delete(_ client: some TestClientProtocol, _ uri: String, token: String? = nil) async throws -> TestResponse {
    try await client.execute(uri: uri, method: .delete, headers: token.map { [.authorization: "Bearer \($0)"] } ?? [:])
}

@Suite("The task pool over HTTP: GET /tasks, every tick, DELETE, bound, restart", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct TaskPoolAPITests {
    @Test("the seed's README: POST E, then GET /tasks lists A to E, and the next ticks publish E as 'Message EE' with key 'Key 4'")
    func seedSequence() async throws {
        try? TestBroker.shared.createTopic("E", partitions: 4)
        try await withApplication(testConfig(intervalMs: 300)) { client throws in
            let response = try await post(client, #"{"topic": "E", "message": "EE"}"#)
            #expect(response.status == .ok && String(buffer: response.body) == "\"Success\"")
            let list = try await poolList(client)
            #expect(list.map { withoutID($0) } == [
                ["topic": "A", "message": "AA"], ["topic": "B", "message": "BB"], ["topic": "C", "message": "CC"],
                ["topic": "D", "message": "DD"], ["topic": "E", "message": "EE"],
            ] as [NSDictionary])
            // Seeded entries have ids derived from their position; posted ones a UUID.
            #expect(list.prefix(4).map { $0["id"] as? String } == ["initial-0", "initial-1", "initial-2", "initial-3"])
            #expect((list[4]["id"] as? String).flatMap(UUID.init(uuidString:)) != nil)
            let ticks = try await readMatching(topic: "E", count: 2) { $0.value.utf8String == "Message EE" }
            #expect(ticks.count == 2, "E was not published on two ticks")
            for message in ticks {
                #expect(message.key?.utf8String == "Key 4")
                #expect(message.headers == [KafkaHeader("header_key", "header_value")])
            }
        }
    }

    @Test("GET /tasks has the seed's shape: key and headers only when the task has them")
    func shape() async throws {
        let scripts = try makeScripts(["generate.lua": "function generate() end"])
        try await withApplication(testConfig(), scripts: scripts) { client throws in
            #expect(try await poolList(client).isEmpty)
            #expect(try await post(client, #"{"topic": "P", "message": "plain"}"#).status == .ok)
            #expect(try await post(client, #"{"topic": "K", "message": "keyed", "key": "k1", "headers": {"h": "v"}}"#).status == .ok)
            let list = try await poolList(client)
            #expect(list.count == 2)
            #expect(Set(list[0].keys) == ["topic", "message", "id"])
            #expect(withoutID(list[1]) == ["topic": "K", "message": "keyed", "key": "k1", "headers": ["h": "v"]] as NSDictionary)
        }
    }

    @Test("a posted task is published once at once and then on every tick; with \"once\": true it is published once and not pooled")
    func onceAndPooled() async throws {
        let pooledTopic = try TestBroker.freshTopic("pooled")
        let onceTopic = try TestBroker.freshTopic("once")
        let scripts = try makeScripts(["generate.lua": """
            function generate(tick, pool)
              local out = {}
              for i, task in ipairs(pool) do out[i] = { topic = task.topic, message = "tick " .. tick } end
              return out
            end
            """])
        try await withApplication(testConfig(intervalMs: 200), scripts: scripts) { client throws in
            #expect(try await post(client, #"{"topic": "\#(onceTopic)", "message": "just once", "once": true}"#).status == .ok)
            #expect(try await post(client, #"{"topic": "\#(pooledTopic)", "message": "pooled"}"#).status == .ok)
            #expect(try await poolSummary(client) == ["\(pooledTopic):pooled"])
            // The posted task itself, then at least two ticks.
            // (Read until both are there: the ticks go on, and the posted task
            // may sit in a partition read after the first ticks.)
            var pooled: [ConsumedMessage] = []
            // A reader's first fetch can take seconds while forty suites start
            // at once: each read waits up to 3 s for a first message.
            try await eventually(timeout: .seconds(40)) {
                pooled = try await readAll(topic: pooledTopic, count: Int.max, timeout: .seconds(3))
                return pooled.contains { $0.value.utf8String == "pooled" }
                    && pooled.filter { $0.value.utf8String.hasPrefix("tick ") }.count >= 2
            }
            #expect(pooled.filter { $0.value.utf8String == "pooled" }.count == 1, "the posted task itself is published once")
            #expect(pooled.filter { $0.value.utf8String.hasPrefix("tick ") }.count >= 2)
            // By now two ticks have passed: the once-task was still published only once.
            let once = try await readAll(topic: onceTopic, count: 2, timeout: .seconds(4))
            #expect(once.map { $0.value.utf8String } == ["just once"])
        }
    }

    @Test("DELETE /tasks/<index> removes that task, DELETE /tasks removes all; bad and missing indexes are explained")
    func deletion() async throws {
        try await withApplication(testConfig()) { client throws in
            #expect(try await post(client, #"{"topic": "E", "message": "EE", "once": false}"#).status == .ok)
            let removed = try await delete(client, "/tasks/1")
            #expect(removed.status == .ok)
            #expect(try JSONSerialization.jsonObject(with: Data(buffer: removed.body)) as? NSDictionary == ["topic": "B", "message": "BB"])
            #expect(try await poolSummary(client) == ["A:AA", "C:CC", "D:DD", "E:EE"])
            let missing = try await delete(client, "/tasks/9")
            #expect(missing.status == .notFound)
            #expect(errorText(missing) == "no task at index 9: the pool has 4 task(s), indexes 0 to 3")
            let bad = try await delete(client, "/tasks/first")
            #expect(bad.status == .badRequest)
            #expect(errorText(bad)?.contains("non-negative integer") == true)
            let all = try await delete(client, "/tasks")
            #expect(String(buffer: all.body) == #"{"removed":4}"#)
            #expect(try await poolList(client).isEmpty)
            #expect(errorText(try await delete(client, "/tasks/0")) == "no task at index 0: the pool is empty")
        }
    }

    @Test("DELETE /tasks/<id> removes that entry whatever its index; an unknown id is a 404; a schedule id still goes to the schedules")
    func deletionByID() async throws {
        try await withApplication(testConfig()) { client throws in
            #expect(try await post(client, #"{"topic": "E", "message": "EE"}"#).status == .ok)
            let id = try #require(try await poolList(client).last?["id"] as? String)
            let removed = try await delete(client, "/tasks/\(id.uppercased())")
            #expect(removed.status == .ok)
            #expect(try JSONSerialization.jsonObject(with: Data(buffer: removed.body)) as? NSDictionary == ["topic": "E", "message": "EE"])
            #expect(try await delete(client, "/tasks/initial-2").status == .ok)
            #expect(try await poolSummary(client) == ["A:AA", "B:BB", "D:DD"])
            let again = try await delete(client, "/tasks/\(id)")
            #expect(again.status == .notFound)
            #expect(errorText(again) == "no task with id '\(id)' in the pool (it was removed, or never existed)")
            // Not a pool id: a schedule's (schedules are off here: the schedule store answers).
            #expect(try await delete(client, "/tasks/s-0-abc").status != .badRequest)
        }
    }

    @Test("read-your-writes: right after each POST or DELETE answers, the same daemon's GET /tasks shows the change")
    func readYourWrites() async throws {
        let scripts = try makeScripts(["generate.lua": "function generate() end"])
        try await withApplication(testConfig(), scripts: scripts) { client throws in
            var expected: [String] = []
            for round in 0..<15 {
                #expect(try await post(client, #"{"topic": "R", "message": "m\#(round)"}"#).status == .ok)
                expected.append("R:m\(round)")
                #expect(try await poolSummary(client) == expected, "after post \(round)")
                if round % 3 == 2 {
                    #expect(try await delete(client, "/tasks/0").status == .ok)
                    expected.removeFirst()
                    #expect(try await poolSummary(client) == expected, "after delete \(round)")
                }
            }
        }
    }

    @Test("a publisher taking over a pool continues from its tick record: after a finished tick N it runs N + 1; after one begun and not finished it runs it again, counted as doubled",
          arguments: [(PoolTick(tick: 7, done: true, dueMs: 0), 8, 0), (PoolTick(tick: 5, done: false, dueMs: 0), 5, 1)])
    func takeoverFromTickRecord(last: PoolTick, firstTick: Int, doubled: Int) async throws {
        let config = testConfig(intervalMs: 200)
        let output = try TestBroker.freshTopic("takeover", partitions: 1)
        // What a previous publisher left in the pool topic.
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 10_000)
        for record in [PoolRecord.created, .tick(last)] { _ = try await producer.send(record.message(topic: config.producer.poolTopic)) }
        await producer.close(timeoutMs: 5000)
        let scripts = try makeScripts(["generate.lua": """
            function generate(tick) return { { topic = "\(output)", message = "tick " .. tick } } end
            """])
        try await withApplication(config, scripts: scripts) { client throws in
            let ticks = try await readAll(topic: output, partitions: 1, count: 3, timeout: .seconds(40)).map { $0.value.utf8String }
            #expect(ticks == (firstTick..<firstTick + 3).map { "tick \($0)" })
            // The third tick's end (its count) may come just after its publications.
            var pool: [String: Any] = [:]
            #expect(try await eventually(timeout: .seconds(10)) {
                let health = try JSONSerialization.jsonObject(with: Data(buffer: try await client.execute(uri: "/health", method: .get).body)) as? [String: Any]
                pool = health?["pool"] as? [String: Any] ?? [:]
                return ((pool["ticks"] as? [String: Int])?["published"] ?? 0) >= 3
            })
            #expect(pool["publisher"] as? Bool == true && pool["live"] as? Bool == true)
            #expect((pool["ticks"] as? [String: Int])?["doubled"] == doubled)
            #expect(((pool["last_tick"] as? Int) ?? 0) >= firstTick)
            let metrics = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            #expect(metrics.contains("scheduler_pool_publisher 1"))
            #expect(metrics.contains(#"scheduler_pool_ticks_total{outcome="published"}"#))
            #expect(metrics.contains(#"scheduler_pool_ticks_total{outcome="doubled"} 1"#) == (doubled == 1))
        }
    }

    @Test("DELETE needs the API token when one is set")
    func deletionNeedsToken() async throws {
        var config = testConfig()
        config.api.token = "s3cret"
        try await withApplication(config) { client throws in
            #expect(try await delete(client, "/tasks/0").status == .unauthorized)
            #expect(try await delete(client, "/tasks").status == .unauthorized)
            #expect(try await poolList(client).count == 4)
            #expect(try await delete(client, "/tasks/0", token: "s3cret").status == .ok)
            #expect(try await poolList(client).count == 3)
        }
    }

    @Test("past [producer] max_pool_tasks a post gets 409 saying so; \"once\" posts still work")
    func bounded() async throws {
        var config = testConfig()
        config.producer.maxPoolTasks = 5
        try await withApplication(config) { client throws in
            #expect(try await post(client, #"{"topic": "E", "message": "fifth"}"#).status == .ok)
            let full = try await post(client, #"{"topic": "E", "message": "sixth"}"#)
            #expect(full.status == .conflict)
            #expect(errorText(full)?.contains("the task pool is full (5 tasks, [producer] max_pool_tasks)") == true)
            #expect(try await post(client, #"{"topic": "E", "message": "once", "once": true}"#).status == .ok)
            #expect(try await poolList(client).count == 5)
        }
    }

    @Test("after a restart the pool is read back from its topic: same tasks, same order, not seeded again")
    func restart() async throws {
        let config = testConfig()
        let topic = try TestBroker.freshTopic("restart")
        let before = try await withApplication(config) { client throws in
            #expect(try await post(client, #"{"topic": "\#(topic)", "message": "added", "key": "k"}"#).status == .ok)
            #expect(try await delete(client, "/tasks/0").status == .ok)
            #expect(try await delete(client, "/tasks/2").status == .ok)
            return try await poolSummary(client)
        }
        #expect(before == ["B:BB", "C:CC", "\(topic):added"])
        // A different generate.lua: its `tasks` must not matter once the pool exists.
        let scripts = try makeScripts(["generate.lua": """
            tasks = { { topic = "Z", message = "ZZ" } }
            function generate() end
            """])
        try await withApplication(config, scripts: scripts) { client throws in
            #expect(try await poolSummary(client) == before)
            #expect(try await poolList(client)[2]["key"] as? String == "k")
            #expect(try await post(client, #"{"topic": "F", "message": "FF"}"#).status == .ok)
            #expect(try await poolSummary(client) == before + ["F:FF"])
        }
    }

    @Test("a fresh pool starts from generate.lua's tasks; without a tasks global it starts empty")
    func initialContent() async throws {
        let scripts = try makeScripts(["generate.lua": """
            tasks = { { topic = "X", message = "one", key = "kx" }, { topic = "Y", message = "two", headers = { a = "b" } } }
            function generate(tick, pool) end
            """])
        try await withApplication(testConfig(), scripts: scripts) { client throws in
            let list = try await poolList(client)
            #expect(list.map { withoutID($0) } == [
                ["topic": "X", "message": "one", "key": "kx"], ["topic": "Y", "message": "two", "headers": ["a": "b"]],
            ] as [NSDictionary])
        }
        let empty = try makeScripts(["generate.lua": "function generate(tick) end"])
        try await withApplication(testConfig(), scripts: empty) { client throws in
            #expect(try await poolList(client).isEmpty)
        }
    }
}
