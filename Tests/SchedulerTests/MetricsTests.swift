import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Scheduler

/// The value of the sample `name{labels}` in Prometheus text, if present.
func sample(_ text: String, _ name: String, _ labels: [String: String] = [:]) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(name + "{") || line.hasPrefix(name + " ") {
        let body = line.dropFirst(name.count)
        if body.hasPrefix("{") {
            guard let close = body.firstIndex(of: "}") else { continue }
            let found = body[body.index(after: body.startIndex)..<close]
            if !labels.allSatisfy({ found.contains("\($0.key)=\"\($0.value)\"") }) { continue }
            return Double(body[body.index(after: close)...].trimmingCharacters(in: .whitespaces))
        } else if labels.isEmpty {
            return Double(body.trimmingCharacters(in: .whitespaces))
        }
    }
    return nil
}

@Suite("Prometheus metrics", .sharesMachine)
struct MetricsTests {
    @Test("GET /metrics has every family, and they move with traffic")
    func metricsMove() async throws {
        let topic = try TestBroker.freshTopic("metrics", partitions: 2)
        let group = "metrics-\(UUID().uuidString.prefix(6))"
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": """
            function process(msg)
              if msg.payload == "bad" then error("bad payload") end
              if msg.payload == "echo" then scheduler.emit("\(topic)-out", "echoed") end
            end
            """])
        var config = poolConfig(topics: [topic], workers: 3, sliceMs: 10, group: group)
        config.groups[0].maxAttempts = 1
        let app = try await buildApplication(LaunchOptions(config: config, scriptsDirectory: scripts, logger: quietLogger))
        try await app.test(.live) { client in
            try await publishKeyed(topic: topic, count: 500, keys: 8)
            for payload in ["bad", "echo"] {
                let response = try await post(client, #"{"topic": "\#(topic)", "message": "\#(payload)"}"#)
                #expect(response.status == .ok)
            }
            _ = try await client.execute(uri: "/nope", method: .get)
            _ = try await client.execute(uri: "/scripts/reload", method: .post)
            var text = ""
            try await eventually {
                text = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
                // Emits are acknowledged after their message is processed (pipelined).
                return (sample(text, "scheduler_messages_processed_total", ["group": group]) ?? 0) >= 501
                    && sample(text, "scheduler_messages_dead_lettered_total", ["group": group]) == 1
                    && sample(text, "scheduler_tasks_published_total", ["topic": "\(topic)-out"]) == 1
            }
            let groupTopic = ["group": group, "topic": topic]
            #expect(sample(text, "scheduler_messages_processed_total", groupTopic) == 501)
            #expect(sample(text, "scheduler_messages_failed_total", groupTopic) == 1)
            #expect(sample(text, "scheduler_messages_dead_lettered_total", groupTopic) == 1)
            #expect(sample(text, "scheduler_partition_lag", ["group": group, "topic": topic, "partition": "0"]) != nil)
            #expect((sample(text, "scheduler_slices_total", ["group": group, "worker": "\(group)-0"]) ?? 0) > 0)
            // Which workers got leases depends on timing (a batch of 500 may
            // be done in a slice or two): at least one worker was busy.
            #expect((0..<3).contains { sample(text, "scheduler_worker_busy_seconds_total", ["group": group, "worker": "\(group)-\($0)"]) != nil })
            #expect(text.contains("scheduler_handoff_gap_seconds_bucket{group=\"\(group)\""))
            #expect((sample(text, "scheduler_lua_call_seconds_count", ["script": "process.lua", "hook": "process"]) ?? 0) >= 502)
            #expect(sample(text, "scheduler_lua_errors_total", ["script": "process.lua", "hook": "process"]) == 1)
            #expect(sample(text, "scheduler_tasks_published_total", ["topic": topic]) == 2)
            #expect(sample(text, "scheduler_tasks_published_total", ["topic": "\(topic)-out"]) == 1)
            #expect(sample(text, "scheduler_tasks_published_total", ["topic": "\(topic).dlq"]) == 1)
            #expect(sample(text, "scheduler_http_requests_total", ["method": "POST", "path": "/tasks/generate", "status": "200"]) == 2)
            #expect(sample(text, "scheduler_http_requests_total", ["method": "GET", "path": "unmatched", "status": "404"]) == 1, "\(text.split(separator: "\n").filter { $0.contains("http_requests_total") })")
            #expect(text.contains("scheduler_http_request_duration_seconds_bucket{"))
            #expect(sample(text, "scheduler_script_reloads_total", ["result": "ok"]) == 1)
        }
    }
}
