import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Scheduler

@Suite("GET /dlq: the dead-letter topics", .sharesMachine)
struct DeadLetterListTests {
    @Test("one entry per dead-letter topic, groups and sources merged, in config order")
    func topicsOfConfig() {
        var first = GroupConfig(name: "a", topics: ["X", "Y"], workers: 1, sliceMs: 10)
        var second = GroupConfig(name: "b", topics: ["Y", "Z"], workers: 1, sliceMs: 10)
        second.deadLetterTopic = "all.dlq"
        let third = GroupConfig(name: "c", topics: ["X"], workers: 1, sliceMs: 10)
        first.deadLetterTopic = "{topic}.dlq"
        let topics = DeadLetterTopics.of([first, second, third])
        #expect(topics.map(\.topic) == ["X.dlq", "Y.dlq", "all.dlq"])
        #expect(topics.map(\.groups) == [["a", "c"], ["a"], ["b"]])
        #expect(topics.map(\.sources) == [["X"], ["Y"], ["Y", "Z"]])
    }

    @Test("counts the dead letters of a live group and shows the newest error", .timeLimit(.minutes(3)))
    func live() async throws {
        let topic = try TestBroker.freshTopic("dlq-list", partitions: 2)
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": """
            function process(msg)
              if msg.payload:sub(1, 3) == "bad" then error("refused " .. msg.payload) end
            end
            """])
        var config = poolConfig(topics: [topic], workers: 2, sliceMs: 10)
        config.groups[0].maxAttempts = 1
        config.groups[0].retryBackoffMs = 0
        let app = try await buildApplication(LaunchOptions(config: config, scriptsDirectory: scripts, logger: quietLogger))
        try await app.test(.live) { client in
            func listed() async throws -> [String: Any]? {
                let response = try await client.execute(uri: "/dlq", method: .get)
                #expect(response.status == .ok, "\(String(buffer: response.body))")
                let object = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                return (object?["topics"] as? [[String: Any]])?.first { $0["topic"] as? String == "\(topic).dlq" }
            }
            let before = try await listed()
            #expect(before?["messages"] as? Int == 0)
            #expect(before?["last_error"] == nil)
            #expect(before?["source_topics"] as? [String] == [topic])
            for payload in ["bad-1", "good", "bad-2", "bad-3"] {
                #expect(try await post(client, #"{"topic": "\#(topic)", "message": "\#(payload)", "key": "k"}"#).status == .ok)
                // One key, one partition: the dead letters are written in this order.
            }
            var entry: [String: Any]?
            let counted = try await eventually(timeout: .seconds(60)) {
                entry = try await listed()
                return entry?["messages"] as? Int == 3
            }
            #expect(counted, "\(String(describing: entry))")
            #expect((entry?["last_error"] as? String)?.contains("refused bad-3") == true, "\(String(describing: entry))")
            #expect((entry?["last_at_ms"] as? Int ?? 0) > 0)
            let partitions = entry?["partitions"] as? [[Int]] ?? []
            #expect(partitions.map { $0[2] - $0[1] }.reduce(0, +) == 3, "\(partitions)")
        }
    }
}
