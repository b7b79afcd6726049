import Foundation
import HTTPTypes
import Testing
@testable import Scheduler

@Suite("Dead-letter redrive interrupted by SIGTERM and SIGKILL", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct RedriveKillTests {
    /// Messages written to `topic` so far (the sum of its partitions' ends).
    func written(_ topic: String, partitions: Int) async throws -> Int64 {
        let thread = DedicatedThread(name: "test-watermarks")
        defer { thread.stop() }
        return try await thread.run {
            let consumer = try KafkaConsumer.make(bootstrapServers: TestBroker.shared.bootstrapServers, groupID: "watermarks")
            defer { consumer.close() }
            return try (0..<partitions).reduce(0) { $0 + (try consumer.queryWatermarks(topic: topic, partition: Int32($1), timeoutMs: 5000).high) }
        }
    }

    /// `total` dead letters of a fresh source topic in its `.dlq`, and a
    /// daemon config whose dead redrive's claims are stale after 6 s.
    func deadLetters(_ total: Int, name: String) async throws -> (source: String, dlq: String, config: URL, scripts: String) {
        let source = try TestBroker.freshTopic(name, partitions: 4)
        let dlq = "\(source).dlq"
        try TestBroker.shared.createTopic(dlq, partitions: 2)
        let ledger = try TestBroker.freshTopic("\(name)-ledger", partitions: 1)
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 10_000)
        let deliveries = (0..<total).map { index in
            producer.enqueue(OutgoingMessage(topic: dlq, key: Array("k\(index % 50)".utf8), value: Array("m\(index)".utf8),
                                             headers: [KafkaHeader("dlq.topic", source), KafkaHeader("dlq.error", "boom")]))
        }
        for delivery in deliveries { _ = try await delivery.report() }
        await producer.close(timeoutMs: 5000)
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": "function process(msg) end"])
        // A 2 s producer timeout: a dead redrive's claims are stale after 6 s.
        let config = try daemonConfig(next: scripts, topic: source, group: "\(name)-\(UUID().uuidString.prefix(6))", workers: 1,
                                      sliceMs: 100, tail: "[producer]\ntimeout_ms = 2000\n[cluster]\nredrive_topic = \"\(ledger)\"")
        return (source, dlq, config, scripts)
    }

    /// How often each dead letter reached `source` (by its `x-redrive-of` marker).
    func moved(_ source: String, total: Int) async throws -> [String: Int] {
        let markers = try await readAll(topic: source, partitions: 4, count: total + 1, timeout: .seconds(20))
            .compactMap { $0.headers.last { $0.name == Redriven.ofHeader }?.text }
        return Dictionary(markers.map { ($0, 1) }, uniquingKeysWith: +)
    }

    @Test("SIGTERM mid-redrive: the redrive ends after its batch, the daemon exits 0, and the next redrive has no stale claims to wait for; every dead letter moved once",
          .timeLimit(.minutes(3)))
    func terminateMidRedrive() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: daemonBinary.path), "build the executable first (make test does)")
        let total = 20_000
        let (source, dlq, config, scripts) = try await deadLetters(total, name: "redrive-term")
        let first = try await PoolDaemon.start(config: config, scripts: scripts)
        defer { if first.process.process.isRunning { kill(first.process.process.processIdentifier, SIGKILL) } }
        let running = Task { try? await first.request(.post, "/dlq/\(dlq)/redrive") }
        #expect(await eventually(timeout: .seconds(60)) { (try? await written(source, partitions: 4)) ?? 0 >= Int64(total / 10) })
        let stopped = ContinuousClock.now
        #expect(await first.process.terminate() == 0, "\(first.process.log.suffix(2000))")
        let took = ContinuousClock.now - stopped
        _ = await running.value
        let atStop = try await written(source, partitions: 4)
        try #require(atStop < Int64(total), "the redrive finished before the stop (\(atStop) moved): nothing was interrupted")
        #expect(first.process.log.contains("stopped by the daemon's shutdown"), "\(first.process.lines.filter { $0.contains("redrive") })")
        // Well within the stop bound: one batch, not the rest of the redrive.
        #expect(took < .seconds(15), "the stop took \(took)")

        let second = try await PoolDaemon.start(config: config, scripts: scripts)
        defer { if second.process.process.isRunning { kill(second.process.process.processIdentifier, SIGKILL) } }
        let response = try await second.request(.post, "/dlq/\(dlq)/redrive")
        let text = String(buffer: response.body ?? .init())
        let answer = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:]
        #expect(response.status == .ok && answer["busy_elsewhere"] as? Int == 0, "\(response.status) \(text)")
        let counts = try await moved(source, total: total)
        #expect(counts.count == total, "\(total - counts.count) dead letters never moved (stopped at \(atStop) moved; answer \(text))")
        #expect(counts.filter { $0.value > 1 }.isEmpty, "moved twice: \(counts.filter { $0.value > 1 }.count)")
        #expect(await second.process.terminate() == 0)
    }

    @Test("a daemon killed mid-redrive and a redrive started again on another: every dead letter moved once, none lost",
          .timeLimit(.minutes(5)))
    func killAndResume() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: daemonBinary.path), "build the executable first (make test does)")
        let total = 20_000
        let (source, dlq, config, scripts) = try await deadLetters(total, name: "redrive-kill")
        let first = try await PoolDaemon.start(config: config, scripts: scripts)
        defer { if first.process.process.isRunning { kill(first.process.process.processIdentifier, SIGKILL) } }
        let running = Task { try? await first.request(.post, "/dlq/\(dlq)/redrive") }
        #expect(await eventually(timeout: .seconds(60)) { (try? await written(source, partitions: 4)) ?? 0 >= Int64(total / 10) })
        kill(first.process.process.processIdentifier, SIGKILL)
        _ = await running.value
        let atKill = try await written(source, partitions: 4)
        try #require(atKill < Int64(total), "the redrive finished before the kill (\(atKill) moved): nothing was interrupted")

        let second = try await PoolDaemon.start(config: config, scripts: scripts)
        defer { if second.process.process.isRunning { kill(second.process.process.processIdentifier, SIGKILL) } }
        var answer: [String: Any] = [:]
        // Until the dead daemon's claims are stale, they are left to it.
        var answers: [String] = []
        let finished = await eventually(timeout: .seconds(120)) {
            guard let response = try? await second.request(.post, "/dlq/\(dlq)/redrive") else { answers.append("no answer"); return false }
            let text = String(buffer: response.body ?? .init())
            answers.append("\(response.status.code) \(text)")
            guard response.status == .ok, let body = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return false }
            answer = body
            return body["busy_elsewhere"] as? Int == 0
        }
        #expect(finished, "\(answers.suffix(3))\n\(second.process.lines.filter { $0.contains("redrive") })")
        let counts = try await moved(source, total: total)
        #expect(counts.count == total, "\(total - counts.count) dead letters never moved (killed at \(atKill) moved; last answer \(answer))")
        let twice = counts.filter { $0.value > 1 }
        #expect(twice.isEmpty, "\(twice.count) moved twice, e.g. \(twice.keys.sorted().prefix(5)) (killed at \(atKill) moved)")
        #expect(await second.process.terminate() == 0)
    }
}
