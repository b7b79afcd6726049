import Testing
@testable import Scheduler

@Suite("Per-call emit budget (CallOutput)", .sharesMachine)
struct CallOutputTests {
    /// A charge: items, bytes; whether it is accepted.
    struct Step: Sendable {
        let items: Int
        let bytes: Int
        let accepted: Bool
    }

    @Test("count and bytes are bounded per call; the first breach sticks until reset; the error names the key", arguments: [
        // Under both bounds.
        ([Step(items: 1, bytes: 10, accepted: true), Step(items: 1, bytes: 10, accepted: true)], nil as String?),
        // The third item passes max_call_emits (2).
        ([Step(items: 1, bytes: 1, accepted: true), Step(items: 1, bytes: 1, accepted: true), Step(items: 1, bytes: 1, accepted: false)],
         "max_call_emits"),
        // Exactly at the byte bound is allowed, one byte more is not.
        ([Step(items: 1, bytes: 100, accepted: true), Step(items: 0, bytes: 1, accepted: false)], "max_call_emit_mb"),
        // One item alone larger than the bound.
        ([Step(items: 1, bytes: 101, accepted: false)], "max_call_emit_mb"),
        // After a breach even a small charge is refused (pcall cannot go on).
        ([Step(items: 1, bytes: 101, accepted: false), Step(items: 0, bytes: 0, accepted: false)], "max_call_emit_mb"),
        // Log text (items: 0) counts bytes only.
        ([Step(items: 0, bytes: 60, accepted: true), Step(items: 0, bytes: 40, accepted: true), Step(items: 1, bytes: 0, accepted: true)], nil),
    ])
    func rules(steps: [Step], breach: String?) {
        var output = CallOutput(maxItems: 2, maxBytes: 100)
        for (index, step) in steps.enumerated() {
            let accepted = output.charge(items: step.items, bytes: step.bytes, by: "scheduler.emit")
            #expect(accepted == step.accepted, "step \(index)")
        }
        #expect(output.breach.map { $0.contains("[scripts] \(breach ?? "-")") && $0.hasPrefix("scheduler.emit: ") } ?? (breach == nil),
                "\(output.breach ?? "no breach")")
        #expect(output.items <= 2 && output.bytes <= 100)
        output.reset()
        #expect(output.breach == nil && output.items == 0 && output.bytes == 0)
        let full = output.charge(items: 2, bytes: 100, by: "scheduler.emit")
        #expect(full)
    }

    @Test("generate() over the budget fails with the budget named; its returned tasks count too")
    func generateOverBudget() async throws {
        let scripts = try makeScripts(["generate.lua": """
            function generate(tick)
              if tick == 1 then
                local s = string.rep("x", 100000)
                while true do scheduler.emit("out", s) end
              elseif tick == 2 then
                local s = string.rep("x", 100000)
                while true do pcall(scheduler.emit, "out", s) end
              elseif tick == 3 then
                local tasks = {}
                for i = 1, 30 do tasks[i] = {topic = "out", message = "m" .. i} end
                return tasks
              elseif tick == 4 then
                while true do scheduler.log("debug", string.rep("y", 100000)) end
              else
                local tasks = {}
                for i = 1, 20 do tasks[i] = {topic = "out", message = "m" .. i} end
                return tasks
              end
            end
            """])
        var limits = LuaLimits.standard
        limits.maxCallEmits = 25
        limits.maxCallEmitBytes = 1024 * 1024
        let script = try await GenerateScript.load(scriptsDirectory: scripts, logger: quietLogger, limits: limits)
        for (tick, key, line) in [(1, "max_call_emit_mb", 4 as Int?), (2, "max_call_emit_mb", nil), (3, "max_call_emits", nil), (4, "max_call_emit_mb", 13)] {
            do {
                _ = try await script.generate(tick: tick)
                Issue.record("tick \(tick) did not fail")
            } catch let error as LuaError {
                #expect(error.budget == .output, "\(error)")
                #expect(error.message.contains("emit limit exceeded") && error.message.contains("[scripts] \(key)"), "\(error)")
                if let line { #expect(error.line == line, "\(error)") }
            }
        }
        // Within the budget (a new call starts from zero).
        #expect(try await script.generate(tick: 5).count == 20)
        await script.close()
    }

    @Test("one message emitting more than [[groups]] max_inflight_emits fails its attempts and is dead-lettered, naming the key",
          .timeLimit(.minutes(2)))
    func moreThanInflight() async throws {
        let topic = try TestBroker.freshTopic("over-inflight", partitions: 1)
        let capture = LogCapture()
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": """
            function process(msg)
              local count = msg.payload == "many" and 6 or 1
              for i = 1, count do scheduler.emit("\(topic)-out", msg.payload .. i) end
              scheduler.log("notice", "seen " .. msg.partition .. " " .. msg.offset .. " ok " .. msg.payload)
            end
            """])
        var config = poolConfig(topics: [topic], workers: 1, sliceMs: 50)
        config.groups[0].maxInflightEmits = 5
        config.groups[0].maxAttempts = 2
        config.groups[0].retryBackoffMs = 1
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 5000)
        for payload in ["one", "many", "two"] { _ = try await producer.send(OutgoingMessage(topic: topic, value: Array(payload.utf8))) }
        await producer.close(timeoutMs: 1000)
        try await withPool(config, scripts: scripts, logger: capture.logger) {
            #expect(await eventually { capture.all.contains { $0.message.contains("dead-lettered") } && capture.lines(startingWith: "seen ").contains { $0.message.hasSuffix(" two") } })
        }
        let failures = capture.all.filter { $0.message.hasPrefix("process() failed") }
        #expect(failures.count == 2, "\(capture.all.map(\.message))")
        #expect(failures.allSatisfy { $0.message.contains("emitted 6 tasks, more than [[groups]] max_inflight_emits (5)") }, "\(failures.map(\.message))")
        let letters = try await readAll(topic: "\(topic).dlq", count: 1)
        #expect(letters.first?.value.utf8String == "many")
    }

    @Test("each process(msg) of a run of fetched messages has its own emit budget: many messages within it never add up past it",
          .timeLimit(.minutes(2)))
    func budgetPerMessageInARun() async throws {
        let topic = try TestBroker.freshTopic("run-budget", partitions: 1)
        let capture = LogCapture()
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": """
            function process(msg)
              for i = 1, 4 do scheduler.emit("\(topic)-out", msg.payload .. i) end
              scheduler.log("notice", "seen " .. msg.partition .. " " .. msg.offset .. " ok " .. msg.payload)
            end
            """])
        var config = poolConfig(topics: [topic], workers: 1, sliceMs: 500)
        config.scripts.maxCallEmits = 5
        // All fetched at once: the worker runs them as one run of process() calls.
        try await publishKeyed(topic: topic, count: 30, keys: 1)
        try await withPool(config, scripts: scripts, logger: capture.logger) {
            #expect(await eventually { capture.lines(startingWith: "seen ").count >= 30 })
        }
        let failures = capture.all.filter { $0.message.hasPrefix("process() failed") }
        #expect(failures.isEmpty, "\(failures.prefix(2).map(\.message))")
    }
}
