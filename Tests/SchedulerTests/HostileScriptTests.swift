import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Scheduler

/// One hostile `process()` body, run for the message "bomb".
struct Hostile: CustomTestStringConvertible, Sendable {
    let name: String
    let body: String
    /// The failure must contain one of these.
    let expected: [String]
    /// `[scripts] max_call_ms` for this case.
    var callMs = 5000
    /// `[scripts] max_instructions` for this case (smaller for the pattern
    /// cases, so the matcher of a debug build on a loaded machine still
    /// spends its instruction budget long before the clock's).
    var instructions = 2_000_000

    var testDescription: String { name }

    /// One worker on `topic`, under this case's budgets and an 8 MiB state.
    func poolConfig(topic: String) -> SchedulerConfig {
        var config = SchedulerTests.poolConfig(topics: [topic], workers: 1, sliceMs: 50)
        config.scripts.maxInstructions = instructions
        config.scripts.maxMemoryMB = 8
        config.scripts.maxCallMs = callMs
        return config
    }

    static let corpus: [Hostile] = [
        Hostile(name: "endless loop", body: "while true do end", expected: ["instruction limit exceeded"]),
        Hostile(name: "endless loop in a coroutine", body: "coroutine.wrap(function() while true do end end)()",
                expected: ["instruction limit exceeded"]),
        Hostile(name: "a loop of coroutines, each caught by resume",
                body: "while true do coroutine.resume(coroutine.create(function() while true do end end)) end",
                expected: ["instruction limit exceeded"]),
        Hostile(name: "many short coroutines",
                body: "while true do coroutine.wrap(function() for i = 1, 900 do end end)() end",
                expected: ["instruction limit exceeded"]),
        Hostile(name: "endless loop in __gc",
                body: "setmetatable({}, {__gc = function() while true do end end}) collectgarbage()",
                expected: ["__gc (finalizers) is not allowed"]),
        Hostile(name: "endless loop in __index",
                body: "local t = setmetatable({}, {__index = function() while true do end end}) local _ = t.x",
                expected: ["instruction limit exceeded"]),
        Hostile(name: "endless loop in __tostring",
                body: "tostring(setmetatable({}, {__tostring = function() while true do end end}))",
                expected: ["instruction limit exceeded"]),
        Hostile(name: "endless loop in __concat",
                body: "local _ = setmetatable({}, {__concat = function() while true do end end}) .. 'x'",
                expected: ["instruction limit exceeded"]),
        Hostile(name: "endless loop in __eq",
                body: "local mt = {__eq = function() while true do end end} local _ = setmetatable({}, mt) == setmetatable({}, mt)",
                expected: ["instruction limit exceeded"]),
        Hostile(name: "endless loop in table.sort's comparator",
                body: "table.sort({3, 1, 2}, function() while true do end end)", expected: ["instruction limit exceeded"]),
        Hostile(name: "endless loop in string.gsub's replacement",
                body: "string.gsub('abc', '%w', function() while true do end end)", expected: ["instruction limit exceeded"]),
        Hostile(name: "catastrophic pattern",
                body: "string.find(string.rep('a', 40), string.rep('a*', 12) .. 'b')", expected: ["instruction limit exceeded"],
                callMs: 30_000, instructions: 200_000),
        Hostile(name: "catastrophic patterns caught by pcall",
                body: "while true do pcall(string.match, string.rep('a', 40), string.rep('a-', 12) .. 'b') end",
                expected: ["instruction limit exceeded"], callMs: 30_000, instructions: 200_000),
        Hostile(name: "string.rep towards the memory cap",
                body: "local s = string.rep('x', 1024) while true do s = s .. s end", expected: ["memory limit exceeded"]),
        Hostile(name: "one string.rep over the memory cap",
                body: "local s = string.rep('x', 64 * 1024 * 1024)", expected: ["memory limit exceeded"]),
        Hostile(name: "deep recursion",
                body: "local function f(n) return 1 + f(n + 1) end f(1)",
                // Growing the stack is slow on a loaded machine: the time budget may end it first.
                expected: ["stack overflow", "memory limit exceeded", "time limit exceeded"]),
        Hostile(name: "a huge table",
                body: "local t = {} for i = 1, 1e9 do t[i] = i end", expected: ["memory limit exceeded"]),
        Hostile(name: "load of a hostile chunk",
                body: "load('while true do end')()", expected: ["instruction limit exceeded in [string"]),
        Hostile(name: "an error that is a table", body: "error({code = 1})", expected: ["(error object is a table value)"]),
        Hostile(name: "an error that is nil", body: "error(nil)", expected: ["(error object is a nil value)"]),
        Hostile(name: "table.move over a huge range",
                body: "table.move({}, 1, math.maxinteger - 1, 2)", expected: ["instruction limit exceeded"]),
        // Copies outside the Lua state, bounded by [scripts] max_call_emits and
        // max_call_emit_mb (defaults: 10000 and 16 MiB per call).
        Hostile(name: "a 100 kB string emitted in a loop",
                body: "local s = string.rep('x', 100000) while true do scheduler.emit('hostile-out', s) end",
                expected: ["emit limit exceeded", "[scripts] max_call_emit_mb"]),
        Hostile(name: "a 100 kB string emitted in a loop, each emit caught by pcall",
                body: "local s = string.rep('x', 100000) while true do pcall(scheduler.emit, 'hostile-out', s) end",
                expected: ["emit limit exceeded"]),
        Hostile(name: "small emits in a loop",
                body: "while true do scheduler.emit('hostile-out', 'x') end", expected: ["[scripts] max_call_emits"]),
        Hostile(name: "100 kB headers emitted in a loop",
                body: "local h = {big = string.rep('h', 100000)} while true do scheduler.emit('hostile-out', 'x', nil, h) end",
                expected: ["[scripts] max_call_emit_mb"]),
        Hostile(name: "100 kB log lines in a loop",
                body: "local s = string.rep('l', 100000) while true do scheduler.log('debug', s) end",
                expected: ["scheduler.log: more than 16 MiB"]),
        Hostile(name: "time spent in C functions",
                body: "local s = string.rep('x', 1024 * 1024) while true do local _ = s:upper() end",
                expected: ["time limit exceeded"], callMs: 200),
    ]
}

@Suite("Hostile scripts", .sharesMachine)
struct HostileScriptTests {
    @Test("a hostile process() fails that message only: it is dead-lettered, the error names the budget, the worker goes on",
          arguments: Hostile.corpus)
    func hostileProcess(_ hostile: Hostile) async throws {
        let topic = try TestBroker.freshTopic("hostile", partitions: 1)
        let capture = LogCapture()
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": """
            function process(msg)
              if msg.payload == "bomb" then
                \(hostile.body)
              end
              scheduler.log("notice", "seen " .. msg.partition .. " " .. msg.offset .. " ok " .. msg.payload)
            end
            """])
        var config = hostile.poolConfig(topic: topic)
        config.groups[0].maxAttempts = 2
        config.groups[0].retryBackoffMs = 1
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 5000)
        for payload in ["one", "bomb", "two"] { _ = try await producer.send(OutgoingMessage(topic: topic, value: Array(payload.utf8))) }
        await producer.close(timeoutMs: 1000)
        let app = try await buildApplication(LaunchOptions(config: config, scriptsDirectory: scripts, logger: capture.logger))
        let (processed, errors) = try await app.test(.live) { client in
            let processed = await eventually { capture.lines(startingWith: "seen ").count >= 2 }
            let view = json(try await client.execute(uri: "/scripts", method: .get))
            let process = (view["scripts"] as? [[String: Any]])?.first { $0["name"] as? String == "process.lua" }
            return (processed, (process?["errors"] as? [String: Int])?["process"])
        }
        #expect(processed)
        #expect(capture.lines(startingWith: "seen ").compactMap(Seen.init).map(\.payload) == ["one", "two"])
        let failures = capture.all.filter { $0.message.hasPrefix("process() failed") }
        #expect(failures.count == 2)
        #expect(failures.allSatisfy { failure in hostile.expected.contains { failure.message.contains($0) } },
                "\(failures.map(\.message))")
        #expect(errors == 2)
        let letters = try await readAll(topic: "\(topic).dlq", count: 1)
        #expect(letters.first?.value.utf8String == "bomb")
    }

    @Test("a hostile process_columns() fails its batch only: the batch goes through process() one by one, the error names the budget",
          arguments: Hostile.corpus.filter { ["endless loop", "endless loop in __index", "one string.rep over the memory cap", "catastrophic pattern"].contains($0.name) }
              + [Hostile(name: "batch.headers rebuilt in an endless loop",
                         body: "while true do rawset(batch, 'headers', nil) local _ = batch.headers end",
                         expected: ["instruction limit exceeded", "time limit exceeded"])])
    func hostileColumns(_ hostile: Hostile) async throws {
        let topic = try TestBroker.freshTopic("hostile-columns", partitions: 1)
        let capture = LogCapture()
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": """
            function process_columns(batch)
              for i = 1, batch.count do
                if batch.payloads[i] == "bomb" then
                  \(hostile.body)
                end
              end
              for i = 1, batch.count do scheduler.log("notice", "columns " .. batch.payloads[i]) end
            end

            function process(msg)
              scheduler.log("notice", "seen " .. msg.partition .. " " .. msg.offset .. " ok " .. msg.payload)
            end
            """])
        let config = hostile.poolConfig(topic: topic)
        // Sent together, so they arrive as one batch (a batch hook needs two messages or more).
        let payloads = (0..<20).map { $0 == 10 ? "bomb" : "m\($0)" }
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 5000)
        let sends = payloads.map { producer.enqueue(OutgoingMessage(topic: topic, value: Array($0.utf8))) }
        for send in sends { _ = try await send.report() }
        await producer.close(timeoutMs: 1000)
        try await withPool(config, scripts: scripts, logger: capture.logger) {
            #expect(await eventually(timeout: .seconds(30)) { Set(capture.lines(startingWith: "seen ").compactMap(Seen.init).map(\.payload)).count == payloads.count })
        }
        let seen = capture.lines(startingWith: "seen ").compactMap(Seen.init).map(\.payload)
        #expect(Set(seen) == Set(payloads), "every message, the bomb too, went through process()")
        #expect(capture.lines(startingWith: "columns ").isEmpty, "no batch with the bomb completed in process_columns")
        let failures = capture.all.filter { $0.message.hasPrefix("process_columns() failed") }
        #expect(!failures.isEmpty)
        #expect(failures.allSatisfy { failure in hostile.expected.contains { failure.message.contains($0) } }, "\(failures.map(\.message))")
    }

    @Test("a budget error names the script, the line and the budget")
    func budgetErrorNamesLine() async throws {
        let scripts = try makeScripts(["generate.lua": """
            function generate(tick)
              if tick == 1 then
                return string.find(string.rep("a", 40), string.rep("a*", 12) .. "b")
              elseif tick == 2 then
                while true do pcall(coroutine.wrap(function() while true do end end)) end
              else
                local s = string.rep("x", 65536)
                while true do local _ = s:rep(16):upper() end
              end
            end
            """])
        for (tick, line, budget) in [(1, 3, LuaBudget.instructions), (2, 5, .instructions), (3, 8, .time)] {
            // Each budget on its own: a long clock for the instruction cases
            // (a debug build's matcher on a loaded machine is slow), and
            // unlimited instructions with a short clock for the time case.
            var limits = LuaLimits.standard
            limits.maxInstructions = budget == .time ? Int(Int32.max) : 200_000
            limits.maxCallMs = budget == .time ? 300 : 30_000
            let script = try await GenerateScript.load(scriptsDirectory: scripts, logger: quietLogger, limits: limits)
            let started = ContinuousClock.now
            do {
                _ = try await script.generate(tick: tick)
                Issue.record("tick \(tick) did not fail")
            } catch let error as LuaError {
                #expect(error.budget == budget, "\(error)")
                #expect(error.line == line, "\(error)")
                #expect(error.script.hasSuffix("generate.lua"))
                #expect(error.message.contains(budget == .time ? "[scripts] max_call_ms" : "[scripts] max_instructions"))
            }
            await script.close()
            let elapsed = ContinuousClock.now - started
            print("tick \(tick) (\(budget)) stopped after \(elapsed)")
            #expect(elapsed < .seconds(3))
        }
    }

    @Test("building msg past the memory cap fails that message, not the process")
    func messageOverMemoryCap() async throws {
        let topic = try TestBroker.freshTopic("hostile-msg", partitions: 1)
        let capture = LogCapture()
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": """
            keep = {}
            function init()
              -- Live data (not garbage) up to about 400 KiB under the 8 MiB cap.
              while true do
                collectgarbage()
                if collectgarbage("count") > 8 * 1024 - 400 then break end
                for _ = 1, 100 do keep[#keep + 1] = string.rep("k", 1000) .. #keep end
              end
            end
            function process(msg)
              scheduler.log("notice", "seen " .. msg.partition .. " " .. msg.offset .. " ok " .. #msg.payload)
            end
            """])
        var config = poolConfig(topics: [topic], workers: 1, sliceMs: 50)
        config.scripts.maxMemoryMB = 8
        config.groups[0].maxAttempts = 2
        config.groups[0].retryBackoffMs = 1
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 5000)
        for payload in ["one", String(repeating: "b", count: 900_000), "two"] {
            _ = try await producer.send(OutgoingMessage(topic: topic, value: Array(payload.utf8)))
        }
        await producer.close(timeoutMs: 1000)
        let app = try await buildApplication(LaunchOptions(config: config, scriptsDirectory: scripts, logger: capture.logger))
        let processed = try await app.test(.live) { _ in
            await eventually { capture.lines(startingWith: "seen ").count >= 2 }
        }
        #expect(processed)
        #expect(capture.lines(startingWith: "seen ").compactMap(Seen.init).map(\.payload) == ["3", "3"])
        #expect(capture.all.contains { $0.message.hasPrefix("process() failed") && $0.message.contains("memory limit exceeded") })
    }

    @Test("error() in on_task, with a string, a table or an endless loop, answers 500 and is counted", arguments: [
        ("error('no way')", "generate.lua:1: no way"),
        ("error({})", "(error object is a table value)"),
        ("while true do end", "instruction limit exceeded"),
    ])
    func onTaskErrors(body: String, expected: String) async throws {
        let scripts = try makeScripts(["generate.lua": "function on_task(task) \(body) end\nfunction generate() end"])
        var config = testConfig()
        config.scripts.maxInstructions = 2_000_000
        let app = try await buildApplication(LaunchOptions(config: config, scriptsDirectory: scripts, logger: quietLogger))
        try await app.test(.live) { client in
            let response = try await post(client, #"{"topic": "hostile-api", "message": "m"}"#)
            #expect(response.status == .internalServerError)
            #expect(String(buffer: response.body).contains(expected), "\(String(buffer: response.body))")
            let view = json(try await client.execute(uri: "/scripts", method: .get))
            let generate = (view["scripts"] as? [[String: Any]])?.first { $0["name"] as? String == "generate.lua" }
            #expect((generate?["errors"] as? [String: Int])?["on_task"] == 1)
        }
    }

    @Test("error() in rotate() with a table, or an endless loop, falls back to the default policy", arguments: [
        "error({reason = 'table'})", "while true do end",
    ])
    func rotateErrors(body: String) async throws {
        let topic = try TestBroker.freshTopic("hostile-rotate", partitions: 1)
        try await publishKeyed(topic: topic, count: 100, keys: 1)
        let capture = LogCapture()
        let scripts = try makeScripts([
            "generate.lua": idleGenerate, "process.lua": seenProcessScript,
            "rotate.lua": "function rotate(ctx)\n  \(body)\nend\n",
        ])
        var config = poolConfig(topics: [topic], workers: 2, sliceMs: 5)
        config.scripts.maxInstructions = 2_000_000
        let app = try await buildApplication(LaunchOptions(config: config, scriptsDirectory: scripts, logger: capture.logger))
        let processed = try await app.test(.live) { _ in
            await eventually { capture.lines(startingWith: "seen ").count >= 100 }
        }
        #expect(processed)
        #expect(capture.all.contains { $0.message.contains("rotate() answer not used") })
    }
}
