import Foundation
import Testing
@_spi(Benchmark) @testable import Scheduler

@Suite("Hostile scripts: shutdown", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct HostileShutdownTests {
    @Test("a worker still busy when the stop grace ends is logged by name and left behind; shutdown returns")
    func stuckWorkerNamed() async throws {
        let topic = try TestBroker.freshTopic("stuck", partitions: 1)
        try await publishKeyed(topic: topic, count: 5, keys: 1)
        // Within its budgets, but longer than the grace this test gives.
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": """
            function process(msg)
              scheduler.log("notice", "busy " .. msg.offset)
              -- 7 to 8 s of wall-clock time (os.time), well past the shutdown
              -- being measured: os.clock() counts the CPU time of every thread of
              -- the process, so under a loaded test run it could end too soon.
              local started = os.time()
              while os.time() - started < 8 do end
              scheduler.log("notice", "done " .. msg.offset)
            end
            """])
        var limits = LuaLimits.standard
        limits.maxInstructions = Int(Int32.max)
        limits.maxCallMs = 10_000
        let capture = LogCapture()
        let catalog = try await ScriptCatalog.load(directory: scripts, limits: limits, needsProcess: true, logger: quietLogger)
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 5000)
        let publisher = TaskPublisher(producer: producer, maxMessageBytes: 1_000_000, logger: quietLogger, metrics: SchedulerMetrics(), topicCreator: nil)
        let group = "stuck-\(UUID().uuidString.prefix(6))"
        let runtime = try await GroupRuntime.make(
            group: GroupConfig(name: group, topics: [topic], workers: 1, sliceMs: 100),
            bootstrapServers: TestBroker.shared.bootstrapServers,
            properties: ["session.timeout.ms": "3000", "heartbeat.interval.ms": "500"],
            publisher: publisher, catalog: catalog, logger: capture.logger,
            grace: ShutdownGrace(stop: .milliseconds(200), close: .milliseconds(200)))
        try runtime.startConsuming()
        let busy = await eventually { !capture.lines(startingWith: "busy ").isEmpty }
        #expect(busy)
        let started = ContinuousClock.now
        await runtime.shutdown()
        let elapsed = ContinuousClock.now - started
        // Shutdown did not wait for the message in flight (the final commit
        // alone can take a second or two on a loaded machine).
        let waited = !capture.lines(startingWith: "done ").isEmpty
        await producer.close(timeoutMs: 1000)
        #expect(!waited, "shutdown took \(elapsed)")
        let stuck = capture.all.first { $0.message.contains("did not stop within") }
        #expect(stuck?.message.hasPrefix("\(group)-0 ") == true, "\(capture.all.map(\.message))")
        #expect(stuck?.metadata[LogKey.worker] == "\(group)-0")
    }
}

extension HostileShutdownTests {
    @Test("a worker left behind at shutdown whose process() returns after the producer was closed emits: refused with a clear error, no crash",
          .timeLimit(.minutes(2)))
    func emitAfterProducerClosed() async throws {
        let topic = try TestBroker.freshTopic("late-emit", partitions: 1)
        try await publishKeyed(topic: topic, count: 1, keys: 1)
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": """
            function process(msg)
              scheduler.log("notice", "busy " .. msg.offset)
              local started = os.time()
              while os.time() - started < 3 do end
              scheduler.emit("\(topic)-out", "late")
              scheduler.log("notice", "returning " .. msg.offset)
            end
            """])
        var limits = LuaLimits.standard
        limits.maxInstructions = Int(Int32.max)
        limits.maxCallMs = 10_000
        let capture = LogCapture()
        let catalog = try await ScriptCatalog.load(directory: scripts, limits: limits, needsProcess: true, logger: quietLogger)
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 5000)
        let publisher = TaskPublisher(producer: producer, maxMessageBytes: 1_000_000, logger: quietLogger, metrics: SchedulerMetrics(), topicCreator: nil)
        let runtime = try await GroupRuntime.make(
            group: GroupConfig(name: "late-\(UUID().uuidString.prefix(6))", topics: [topic], workers: 1, sliceMs: 100),
            bootstrapServers: TestBroker.shared.bootstrapServers,
            properties: ["session.timeout.ms": "3000", "heartbeat.interval.ms": "500"],
            publisher: publisher, catalog: catalog, logger: capture.logger,
            grace: ShutdownGrace(stop: .milliseconds(200), close: .milliseconds(200)))
        try runtime.startConsuming()
        #expect(await eventually { !capture.lines(startingWith: "busy ").isEmpty })
        // Shutdown as the daemon does it: the groups, then the producer.
        await runtime.shutdown()
        #expect(capture.lines(startingWith: "returning ").isEmpty, "the call was meant to outlive the shutdown")
        await producer.close(timeoutMs: 1000)
        #expect(producer.state == .closed)
        let refused = await eventually(timeout: .seconds(30)) {
            capture.all.contains { $0.message.contains("refused") && $0.message.contains("the producer is closed") }
        }
        #expect(refused, "\(capture.all.map(\.message))")
        #expect(!capture.lines(startingWith: "returning ").isEmpty)
        // Every call on the closed producer answers at once with the same error.
        await #expect(throws: KafkaError.self) { _ = try await producer.send(OutgoingMessage(topic: topic, value: [1])) }
        #expect(producer.outstandingCount == 0)
        #expect(await producer.flush(timeoutMs: 10) == false)
    }

    @Test("an endless shutdown() in process.lua and rotate.lua ends by its budget when the group stops")
    func endlessShutdownHook() async throws {
        let topic = try TestBroker.freshTopic("endless-shutdown", partitions: 1)
        let forever = "function shutdown() while true do pcall(coroutine.wrap(function() while true do end end)) end end\n"
        let scripts = try makeScripts([
            "generate.lua": idleGenerate,
            "process.lua": forever + "function process(msg) end",
            "rotate.lua": forever + "function rotate(ctx) end",
        ])
        var limits = LuaLimits.standard
        limits.maxInstructions = Int(Int32.max)
        limits.maxCallMs = 300
        let capture = LogCapture()
        let catalog = try await ScriptCatalog.load(directory: scripts, limits: limits, needsProcess: true, logger: quietLogger)
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 5000)
        let publisher = TaskPublisher(producer: producer, maxMessageBytes: 1_000_000, logger: quietLogger, metrics: SchedulerMetrics(), topicCreator: nil)
        let runtime = try await GroupRuntime.make(
            group: GroupConfig(name: "endless-\(UUID().uuidString.prefix(6))", topics: [topic], workers: 2, sliceMs: 100),
            bootstrapServers: TestBroker.shared.bootstrapServers,
            properties: ["session.timeout.ms": "3000", "heartbeat.interval.ms": "500"],
            publisher: publisher, catalog: catalog, logger: capture.logger,
            grace: ShutdownGrace(maxCallMs: limits.maxCallMs, producerTimeoutMs: 5000))
        try runtime.startConsuming()
        let started = ContinuousClock.now
        await runtime.shutdown()
        let elapsed = ContinuousClock.now - started
        await producer.close(timeoutMs: 1000)
        print("group with endless shutdown() hooks (max_call_ms 300) stopped after \(elapsed)")
        // Both workers and the coordinator close side by side, each within one call's budget.
        #expect(elapsed < .seconds(3), "shutdown took \(elapsed)")
        let failed = capture.all.filter { $0.message.hasPrefix("shutdown() failed") }
        #expect(failed.count == 3, "\(capture.all.map(\.message))")
        #expect(failed.allSatisfy { $0.message.contains("time limit exceeded") && $0.message.contains(":1:") })
        #expect(!capture.all.contains { $0.message.contains("did not close within") })
        let errors = Dictionary(uniqueKeysWithValues: catalog.view().scripts.map { ($0.name, $0.errors["shutdown"] ?? 0) })
        #expect(errors["process.lua"] == 2)
        #expect(errors["rotate.lua"] == 1)
    }
}

@Suite("Hostile scripts: the daemon as a process", .sharesMachine)
struct HostileDaemonTests {
    @Test("SIGTERM stops the daemon within the documented bound while process() wedges; completed offsets are committed")
    func sigtermWhileWedged() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: daemonBinary.path), "build the executable first (make test does)")
        let topic = try TestBroker.freshTopic("wedge", partitions: 1)
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": """
            function process(msg)
              if msg.payload == "wedge" then
                while true do pcall(coroutine.wrap(function() while true do end end)) end
              end
              scheduler.log("notice", "seen " .. msg.partition .. " " .. msg.offset .. " x " .. msg.payload)
            end
            """])
        let maxCallMs = 200, producerTimeoutMs = 5000
        let configFile = try daemonConfig(
            next: scripts, topic: topic, group: "wedge", workers: 1, sliceMs: 50,
            groupExtra: "max_attempts = 1000\nretry_backoff_ms = 0",
            tail: "[scripts]\nmax_instructions = 2147483647\nmax_call_ms = \(maxCallMs)")
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 5000)
        for payload in ["one", "two", "wedge", "three"] { _ = try await producer.send(OutgoingMessage(topic: topic, value: Array(payload.utf8))) }
        await producer.close(timeoutMs: 1000)
        func seen(_ daemon: DaemonProcess) -> [String] {
            daemon.lines.filter { $0.contains("] seen ") }.compactMap { $0.split(separator: " ").last.map(String.init) }
        }

        let first = try DaemonProcess(["--config", configFile.path, "--scripts", scripts, "--log-level", "info"])
        let wedged = await eventually { first.log.contains("time limit exceeded") }
        #expect(wedged, "log:\n\(first.log.suffix(2000))")
        #expect(seen(first) == ["one", "two"])
        let started = ContinuousClock.now
        let status = await first.terminate(timeout: .seconds(30))
        let elapsed = ContinuousClock.now - started
        print("SIGTERM with process() wedged (max_call_ms \(maxCallMs)): the daemon exited after \(elapsed)")
        #expect(status == 0, "log:\n\(first.log.suffix(2000))")
        // docs/scripting.md: 2 × max_call_ms + producer timeout_ms + 3 s at most.
        #expect(elapsed < .milliseconds(2 * maxCallMs + producerTimeoutMs + 3000))
        #expect(!first.log.contains("did not stop within"))

        // The completed messages were committed: a benign restart sees only the rest.
        try "function process(msg) scheduler.log('notice', 'seen ' .. msg.partition .. ' ' .. msg.offset .. ' x ' .. msg.payload) end"
            .write(toFile: scripts + "/process.lua", atomically: true, encoding: .utf8)
        let second = try DaemonProcess(["--config", configFile.path, "--scripts", scripts, "--log-level", "info"])
        let resumed = await eventually { seen(second).count >= 2 }
        #expect(resumed)
        #expect(await second.terminate() == 0)
        #expect(seen(second) == ["wedge", "three"])
    }
}
