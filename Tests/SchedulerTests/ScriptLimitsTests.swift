import Foundation
import Testing
@testable import Scheduler

@Suite("Script limits", .sharesMachine)
struct ScriptLimitsTests {
    @Test("an endless loop, a memory bomb or a wrong answer in process() is dead-lettered; the worker goes on", arguments: [
        ("while true do end", "instruction limit exceeded"),
        ("local ok = true while true do ok = pcall(function() while true do end end) end", "instruction limit exceeded"),
        ("local t = {} while true do t[#t + 1] = string.rep('x', 4096) .. #t end", "memory limit exceeded"),
        ("return { done = true }", "process() must return nothing, true, or false and a reason; got table"),
    ])
    func runaway(body: String, error: String) async throws {
        let topic = try TestBroker.freshTopic("runaway", partitions: 1)
        let capture = LogCapture()
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": """
            function process(msg)
              if msg.payload == "bomb" then \(body) end
              scheduler.log("notice", "seen " .. msg.partition .. " " .. msg.offset .. " ok " .. msg.payload)
            end
            """])
        var config = poolConfig(topics: [topic], workers: 1, sliceMs: 50)
        config.scripts.maxInstructions = 2_000_000
        config.scripts.maxMemoryMB = 8
        config.groups[0].maxAttempts = 2
        config.groups[0].retryBackoffMs = 1
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 5000)
        for payload in ["one", "bomb", "two"] { _ = try await producer.send(OutgoingMessage(topic: topic, value: Array(payload.utf8))) }
        await producer.close(timeoutMs: 1000)
        let app = try await buildApplication(LaunchOptions(config: config, scriptsDirectory: scripts, logger: capture.logger))
        let errors = try await app.test(.live) { client in
            await eventually { capture.lines(startingWith: "seen ").count >= 2 }
            let view = json(try await client.execute(uri: "/scripts", method: .get))
            let process = (view["scripts"] as? [[String: Any]])?.first { $0["name"] as? String == "process.lua" }
            return (process?["errors"] as? [String: Int])?["process"]
        }
        #expect(capture.lines(startingWith: "seen ").compactMap(Seen.init).map(\.payload) == ["one", "two"])
        #expect(capture.all.contains { $0.message.hasPrefix("process() failed") && $0.message.contains(error) })
        // A wrong answer is not a Lua error; a raised one is counted.
        #expect(errors == (error.hasPrefix("process() must return") ? nil : 2))
        let letters = try await readAll(topic: "\(topic).dlq", count: 1)
        #expect(letters.first?.value.utf8String == "bomb")
        #expect(letters.first?.headers.first { $0.name == "dlq.error" }?.text?.contains(error) == true)
    }

    @Test("with the default limits an endless loop ends as an error")
    func defaultBudget() async throws {
        let scripts = try makeScripts(["generate.lua": "function generate() while true do end end"])
        let script = try await GenerateScript.load(scriptsDirectory: scripts, logger: quietLogger)
        let started = ContinuousClock.now
        await #expect {
            _ = try await script.generate(tick: 1)
        } throws: { error in
            // Normally the instruction budget; on a starved CPU the clock may come first.
            (error as? LuaError).map { [.instructions, .time].contains($0.budget) && $0.line == 1 } == true
        }
        print("default instruction budget ran out after \(ContinuousClock.now - started)")
        await script.close()
    }

    @Test("an error in rotate() falls back to the default policy and is counted")
    func rotateError() async throws {
        let topic = try TestBroker.freshTopic("rotate-error", partitions: 1)
        try await publishKeyed(topic: topic, count: 200, keys: 1)
        let capture = LogCapture()
        let scripts = try makeScripts([
            "generate.lua": idleGenerate, "process.lua": seenProcessScript,
            "rotate.lua": "function rotate(ctx)\n  error('no idea')\nend\n",
        ])
        let app = try await buildApplication(LaunchOptions(config: poolConfig(topics: [topic], workers: 2, sliceMs: 5), scriptsDirectory: scripts, logger: capture.logger))
        let errors = try await app.test(.live) { client in
            await eventually { capture.lines(startingWith: "seen ").count >= 200 }
            let view = json(try await client.execute(uri: "/scripts", method: .get))
            let rotate = (view["scripts"] as? [[String: Any]])?.first { $0["name"] as? String == "rotate.lua" }
            return (rotate?["errors"] as? [String: Int])?["rotate"] ?? 0
        }
        #expect(capture.lines(startingWith: "seen ").count == 200)
        #expect(errors > 0)
        #expect(capture.all.contains { $0.message.contains("rotate() answer not used") && $0.message.contains("rotate.lua:2: no idea") })
    }
}
