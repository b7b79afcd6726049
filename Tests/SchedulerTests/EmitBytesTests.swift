import Foundation
import Testing
@_spi(Benchmark) @testable import Scheduler

/// `[[groups]] max_inflight_emit_mb`: the bytes of a group's emits waiting
/// for acknowledgement are bounded, not only their number.
@Suite("Emit budget: bytes in flight", .sharesMachine)
struct EmitBudgetBytesTests {
    @Test("the rule: within both bounds, or alone in an empty pipeline", arguments: [
        // count, bytes, in use, bytes in use, fits
        (1, 100, 0, 0, true),
        (1, 5000, 0, 0, true),        // larger than the byte bound: alone
        (20, 100, 0, 0, true),        // more than the count bound: alone (Worker.emit refuses it before)
        (1, 400, 1, 600, true),       // exactly at the byte bound
        (1, 401, 1, 600, false),      // one byte past it
        (1, 1, 10, 10, false),        // at the count bound
        (2, 10, 8, 10, true),
    ])
    func rule(count: Int, bytes: Int, inUse: Int, bytesInUse: Int, fits: Bool) {
        #expect(EmitBudget.fits(count: count, bytes: bytes, inUse: inUse, bytesInUse: bytesInUse, limit: 10, byteLimit: 1000) == fits)
    }

    @Test("a worker waits while the bytes in flight would pass the bound, and goes once they are released")
    func waitsForBytes() async throws {
        let budget = EmitBudget(limit: 100, byteLimit: 1000)
        #expect(budget.acquire(1, bytes: 600, stop: nil))
        // A second message of 600 bytes does not fit: it waits until told
        // to stop, woken by the stop.
        let stop = StopSignal()
        let thread = DedicatedThread(name: "emit-bytes")
        defer { thread.stop() }
        let refused = Task { try await thread.run { budget.acquire(1, bytes: 600, stop: stop) } }
        #expect(await eventually(timeout: .seconds(10)) { stop.waits == 1 })
        let asked = ContinuousClock.now
        stop.request()
        // A stop that does not wake it fails here; the release below then
        // lets it go (taking the bytes), so the test ends either way.
        let woken = await eventually(timeout: .seconds(5)) { stop.waits == 0 }
        #expect(woken && ContinuousClock.now - asked < .seconds(1), "the stop woke the wait")
        if !woken { budget.release(0, bytes: 600) }
        #expect(try await !refused.value)
        #expect(budget.currentBytes == 600, "nothing taken by the refused wait")
        // Released from another thread while a worker waits: it goes.
        let waiting = Task { try await thread.run { budget.acquire(1, bytes: 600, stop: nil) } }
        budget.release(1, bytes: 600)
        #expect(try await waiting.value)
        #expect(budget.currentBytes == 600)
        #expect(budget.peakBytes == 600)
        budget.release(1, bytes: 600)
        // A message larger than the bound goes alone.
        #expect(budget.acquire(3, bytes: 5000, stop: stop))
        #expect(budget.peakBytes == 5000)
    }

    @Test("a message's bytes come back when its last emit settles, acknowledged or failed")
    func bytesFreedAtLastSettle() {
        var mark = OffsetWatermark()
        mark.processed(offset: 5, emits: 2, bytes: 300)
        mark.processed(offset: 6, emits: 1, bytes: 50)
        #expect(mark.settle(offset: 5, error: nil) == 0)
        #expect(mark.settle(offset: 6, error: "refused") == 50)
        #expect(mark.settle(offset: 5, error: "refused") == 300)
        #expect(mark.settle(offset: 5, error: nil) == 0, "a report too many frees nothing")
    }
}

@Suite("Emit budget: bytes in flight in a running group", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct EmitBytesPoolTests {
    @Test("with a slow broker the group's emit bytes in flight stay within max_inflight_emit_mb; a message whose emits alone pass it goes through; nothing is left counted",
          .timeLimit(.minutes(2)))
    func boundedBytes() async throws {
        let broker = try EmbeddedBroker.start()
        defer { broker.shutdown() }
        try broker.createTopic("in", partitions: 2)
        try broker.createTopic("out", partitions: 2)
        let total = 30
        try await publish(broker, topic: "in", count: total, keys: 6)
        // Acknowledgements take 50 ms: without the byte bound the group's
        // emits (400 kB per message) pile up far past 1 MiB.
        broker.setRoundTripTime(1, milliseconds: 50)
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": """
            local chunk = string.rep("x", 200000)
            function process(msg)
              local n = msg.payload == "big" and 3 or 2
              local part = msg.payload == "big" and string.rep("y", 600000) or chunk
              for i = 1, n do scheduler.emit("out", part, msg.key) end
              scheduler.log("notice", "seen " .. msg.partition .. " " .. msg.offset .. " " .. msg.payload)
            end
            """])
        let catalog = try await ScriptCatalog.load(directory: scripts, limits: .standard, needsProcess: true, logger: quietLogger)
        let producer = try KafkaProducer.make(bootstrapServers: broker.bootstrapServers, deliveryTimeoutMs: 30_000)
        let publisher = TaskPublisher(producer: producer, maxMessageBytes: 1_000_000, logger: quietLogger, metrics: SchedulerMetrics(), topicCreator: nil)
        var group = GroupConfig(name: "bytes-\(UUID().uuidString.prefix(6))", topics: ["in"], workers: 2, sliceMs: 200)
        group.maxInflightEmitMB = 1
        let capture = LogCapture()
        let runtime = try await GroupRuntime.make(group: group, bootstrapServers: broker.bootstrapServers, properties: [:],
                                                  publisher: publisher, catalog: catalog, logger: capture.logger)
        try runtime.startConsuming()
        let budget = runtime.coordinator.environment.emitBudget
        // The mock broker keeps only the last few MB of a partition: what was
        // handed over is counted by the `seen` lines, what settled by the budget.
        let seen = { capture.lines(startingWith: "seen ").count }
        #expect(await eventually(timeout: .seconds(90)) { seen() >= total })
        let peak = budget.peakBytes
        // Then one message emitting 1.8 MB: more than the bound alone.
        let big = try KafkaProducer.make(bootstrapServers: broker.bootstrapServers, deliveryTimeoutMs: 10_000)
        _ = try await big.send(OutgoingMessage(topic: "in", key: Array("k0".utf8), value: Array("big".utf8)))
        await big.close(timeoutMs: 1000)
        #expect(await eventually(timeout: .seconds(60)) { seen() >= total + 1 })
        #expect(await eventually { budget.current == 0 && budget.currentBytes == 0 }, "every emit settled gives its bytes back: \(budget.currentBytes)")
        await runtime.shutdown()
        await producer.close(timeoutMs: 1000)
        print("emit bytes in flight with max_inflight_emit_mb 1 and 400 kB per message: peak \(peak) bytes; with the 1.8 MB message \(budget.peakBytes)")
        #expect(peak <= 1024 * 1024, "peak \(peak) bytes")
        #expect(peak >= 800_000, "the pipeline held two messages' emits at once (\(peak) bytes)")
        #expect(budget.peakBytes >= 1_800_000, "the large message went through alone")
        #expect(!capture.all.contains { $0.message.hasPrefix("process() failed") || $0.message.hasPrefix("emits of offset") },
                "waiting for room is never a failed attempt, and no emit failed: \(capture.all.filter { $0.level >= .warning }.map(\.message).prefix(3))")
    }
}
