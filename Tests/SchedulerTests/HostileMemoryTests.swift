import Foundation
import Testing
@testable import Scheduler

/// A process's memory from `/proc/<pid>/status`, in MiB: the resident set
/// now (`VmRSS`) and its peak so far (`VmHWM`).
func processMemoryMiB(_ pid: Int32) -> (rss: Int, peak: Int)? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    func field(_ name: String) -> Int? {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return nil }
        return line.split(separator: " ").compactMap { Int($0) }.first.map { $0 / 1024 }
    }
    guard let rss = field("VmRSS"), let peak = field("VmHWM") else { return nil }
    return (rss, peak)
}

@Suite("Hostile scripts: the daemon's memory", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct HostileMemoryTests {
    @Test("process() emitting a 100 kB string in a loop: every call ends at [scripts] max_call_emit_mb, the message is dead-lettered, the daemon's peak RSS stays bounded",
          .timeLimit(.minutes(3)))
    func emitLoopBounded() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: daemonBinary.path), "build the executable first (make test does)")
        let topic = try TestBroker.freshTopic("emit-bomb", partitions: 2)
        try TestBroker.shared.createTopic("\(topic).dlq", partitions: 2)
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": """
            function process(msg)
              if msg.payload == "bomb" then
                local s = string.rep("x", 100000)
                while true do scheduler.emit("\(topic)-out", s) end
              end
              scheduler.log("notice", "seen " .. msg.partition .. " " .. msg.offset .. " x " .. msg.payload)
            end
            """])
        let configFile = try daemonConfig(next: scripts, topic: topic, group: "emit-bomb", workers: 2, sliceMs: 50,
                                          groupExtra: "max_attempts = 3\nretry_backoff_ms = 1")
        let (daemon, producer, idle) = try await startWarmed(configFile: configFile, scripts: scripts, topic: topic)
        // One bomb per partition: both workers run one at once.
        for partition: Int32 in [0, 1] {
            _ = try await producer.send(OutgoingMessage(topic: topic, value: Array("bomb".utf8), partition: partition))
            _ = try await producer.send(OutgoingMessage(topic: topic, value: Array("after".utf8), partition: partition))
        }
        await producer.close(timeoutMs: 1000)
        let letters = try await readAll(topic: "\(topic).dlq", partitions: 2, count: 2, timeout: .seconds(90))
        let done = await eventually(timeout: .seconds(30)) { daemon.lines.filter { $0.contains("] seen ") && $0.hasSuffix(" after") }.count >= 2 }
        let memory = try #require(processMemoryMiB(daemon.process.processIdentifier))
        let status = await daemon.terminate(timeout: .seconds(30))
        print("emit loop of 100 kB strings (2 workers, 3 attempts each, [scripts] max_call_emit_mb 16): daemon RSS idle \(idle.rss) MiB, peak \(memory.peak) MiB (+\(memory.peak - idle.rss) MiB)")
        #expect(letters.map { $0.value.utf8String } == ["bomb", "bomb"])
        #expect(done, "log:\n\(daemon.log.suffix(3000))")
        let failures = daemon.lines.filter { $0.contains("process() failed") }
        #expect(failures.count == 6)
        #expect(failures.allSatisfy { $0.contains("emit limit exceeded") && $0.contains("[scripts] max_call_emit_mb") }, "\(failures.prefix(2))")
        // Unbounded, each call grew the daemon ~350 MB/s for max_call_ms (5 s).
        // Bounded: 2 workers × 16 MiB of copies, plus the allocator's slack.
        #expect(memory.peak - idle.rss < 160, "peak RSS \(memory.peak) MiB, idle \(idle.rss) MiB")
        #expect(status == 0)
    }
}

extension HostileMemoryTests {
    @Test("process() emitting 3.6 MB per message (30 of them) while the broker acknowledges slowly: emits wait at [[groups]] max_inflight_emit_mb, never fail; the daemon's peak RSS stays bounded",
          .timeLimit(.minutes(3)))
    func emitBytesInFlightBounded() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: daemonBinary.path), "build the executable first (make test does)")
        let topic = try TestBroker.freshTopic("emit-bytes", partitions: 2)
        try TestBroker.shared.createTopic("\(topic)-out", partitions: 2)
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": """
            local big = string.rep("x", 900000)
            function process(msg)
              if msg.payload ~= "warm" then
                for i = 1, 4 do scheduler.emit("\(topic)-out", big) end
              end
              scheduler.log("notice", "seen " .. msg.partition .. " " .. msg.offset .. " x " .. msg.payload)
            end
            """])
        // The broker answers 300 ms late (below): with at most 5 produce requests
        // in flight, emits queue in the producer, and without the byte bound the
        // workers hand over all 30 messages' emits (108 MB) long before they are acknowledged.
        let configFile = try daemonConfig(next: scripts, topic: topic, group: "emit-bytes", workers: 2, sliceMs: 200,
                                          groupExtra: "max_inflight_emit_mb = 16",
                                          properties: ["session.timeout.ms": "3000", "heartbeat.interval.ms": "500"])
        let (daemon, producer, idle) = try await startWarmed(configFile: configFile, scripts: scripts, topic: topic)
        // Every answer of the (shared) broker comes 300 ms late for the rest of this test.
        TestBroker.shared.setRoundTripTime(1, milliseconds: 300)
        defer { TestBroker.shared.setRoundTripTime(1, milliseconds: 0) }
        for index in 0..<30 {
            _ = producer.enqueue(OutgoingMessage(topic: topic, value: Array("load".utf8), partition: Int32(index % 2)))
        }
        _ = await producer.flush(timeoutMs: 5000)
        await producer.close(timeoutMs: 1000)
        let done = await eventually(timeout: .seconds(120)) { daemon.lines.filter { $0.contains("] seen ") && $0.hasSuffix(" load") }.count >= 30 }
        let memory = try #require(processMemoryMiB(daemon.process.processIdentifier))
        let status = await daemon.terminate(timeout: .seconds(30))
        print("30 messages emitting 4 x 900 kB each, broker answers 300 ms late, max_inflight_emit_mb 16: daemon RSS idle \(idle.rss) MiB, peak \(memory.peak) MiB (+\(memory.peak - idle.rss) MiB)")
        #expect(done, "log:\n\(daemon.log.suffix(3000))")
        // (The embedded broker keeps only the last few MB of a partition: the
        // output is not read back; a failed delivery would be logged.)
        let failures = daemon.lines.filter { $0.contains("process() failed") || $0.contains("emits of offset") }
        #expect(failures.isEmpty, "waiting for room is never a failed attempt: \(failures.prefix(3))")
        #expect(memory.peak - idle.rss < 80, "peak RSS \(memory.peak) MiB, idle \(idle.rss) MiB")
        #expect(status == 0)
    }
}

extension HostileMemoryTests {
    /// Starts the daemon on `configFile` and `scripts`, sends "warm" to both
    /// partitions of `topic` and waits until the script has seen them: the
    /// daemon has joined and processed, and its resident size then is the
    /// idle size the growth is measured from. The producer goes on sending.
    private func startWarmed(configFile: URL, scripts: String, topic: String) async throws
        -> (DaemonProcess, KafkaProducer, idle: (rss: Int, peak: Int)) {
        let daemon = try DaemonProcess(["--config", configFile.path, "--scripts", scripts, "--log-level", "info"])
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 5000)
        for partition: Int32 in [0, 1] {
            _ = try await producer.send(OutgoingMessage(topic: topic, value: Array("warm".utf8), partition: partition))
        }
        #expect(await eventually(timeout: .seconds(60)) { daemon.lines.filter { $0.contains("] seen ") }.count >= 2 })
        let idle = try #require(processMemoryMiB(daemon.process.processIdentifier))
        return (daemon, producer, idle)
    }
}
