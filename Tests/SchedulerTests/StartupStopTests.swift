import Foundation
import Testing
@testable import Scheduler

/// A daemon stopped with SIGTERM at many moments of its start-up, next to a
/// second member of its group (librdkafka before 2.3.0 aborted closing a
/// cooperative-sticky consumer between its JoinGroup and its first SyncGroup).
@Suite("A daemon stopped while it starts", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct StartupStopTests {
    /// Seconds from the start of the process to its SIGTERM: before the
    /// group is joined, during the join (the mock broker answers it after
    /// about 1-3 s; cooperative-sticky takes a second round, 4-5 s in all),
    /// and while the daemon holds partitions and works.
    static let delays: [Double] = [0.2, 0.5, 0.9, 1.3, 1.7, 2.2, 2.7, 3.3, 4.0, 4.8, 5.6, 6.5]

    /// What one stop left.
    struct Stop: CustomStringConvertible {
        let delay: Double
        /// Exit status, or the signal that ended it (`signaled`).
        let status: Int32?
        let signaled: Bool
        /// Messages (`partition offset`) the stopped daemon processed.
        let processed: Set<String>
        /// Of those, what the other member processed after the stop: its final commit did not cover them.
        let redone: Set<String>
        let commitFailed: Bool
        let log: String

        var description: String {
            "after \(delay) s: \(signaled ? "killed by signal" : "exit") \(status.map(String.init) ?? "none (hung)"), processed \(processed.count), redone \(redone.count)\(commitFailed ? ", final commit failed" : "")"
        }
    }

    /// The partitions a daemon holds now, replayed from its log ("partitions
    /// assigned: t[0], t[1]" adds, "partitions revoked…: t[0]" removes; an
    /// eager rebalance lists every partition, a cooperative one the moves).
    static func held(_ lines: [Substring]) -> Set<String> {
        var held: Set<String> = []
        for line in lines {
            guard let range = line.range(of: "partitions assigned: ") ?? line.range(of: "partitions revoked") else { continue }
            let list = line[range.upperBound...].drop { $0 != ":" && line[range].hasPrefix("partitions revoked") }
            let names = Set(list.split(whereSeparator: { $0 == "," || $0 == ":" || $0 == " " }).filter { $0.contains("[") }.map(String.init))
            if line[range].hasPrefix("partitions assigned") { held.formUnion(names) } else { held.subtract(names) }
        }
        return held
    }

    static func seen(_ lines: some Sequence<Substring>) -> [String] {
        lines.compactMap { line in line.range(of: "] seen ").map { String(line[$0.upperBound...]) } }
    }

    /// Starts a member that stays, then starts and stops the other member at
    /// each of `delays` while messages keep arriving (200 a second).
    static func run(strategy: String?) async throws -> [Stop] {
        try #require(FileManager.default.isExecutableFile(atPath: daemonBinary.path), "build the executable first (make test does)")
        let topic = try TestBroker.freshTopic("startstop", partitions: 4)
        let scripts = try makeScripts([
            "generate.lua": idleGenerate,
            "process.lua": "function process(msg) scheduler.log('notice', 'seen ' .. msg.partition .. ' ' .. msg.offset) end",
        ])
        // As short a session as the mock broker allows (its first join waits
        // 3 s; with 2 s sessions no member is ever assigned).
        var properties = ["session.timeout.ms": "3000", "heartbeat.interval.ms": "500"]
        if let strategy { properties["partition.assignment.strategy"] = strategy }
        let configFile = try daemonConfig(next: scripts, topic: topic, group: "startstop", workers: 2, sliceMs: 50, properties: properties)
        let arguments = ["--config", configFile.path, "--scripts", scripts, "--log-level", "info"]

        let feeding = Task {
            let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 10_000)
            var index = 0
            while !Task.isCancelled {
                for _ in 0..<10 {
                    _ = producer.enqueue(OutgoingMessage(topic: topic, key: Array("k\(index % 16)".utf8), value: Array("\(index)".utf8)))
                    index += 1
                }
                try? await Task.sleep(for: .milliseconds(50))
            }
            await producer.close(timeoutMs: 5000)
        }
        defer { feeding.cancel() }

        let stayer = try DaemonProcess(arguments)
        defer { if stayer.process.isRunning { kill(stayer.process.processIdentifier, SIGKILL) } }
        #expect(await eventually(timeout: .seconds(60)) { held(stayer.lines).count == 4 && !seen(stayer.lines).isEmpty },
                "the member that stays never held every partition and worked: \(held(stayer.lines))")

        var stops: [Stop] = []
        for delay in delays {
            let daemon = try DaemonProcess(arguments)
            try await Task.sleep(for: .seconds(delay))
            let status = await daemon.terminate(timeout: .seconds(30))
            if status == nil { kill(daemon.process.processIdentifier, SIGKILL) }
            let processed = Set(seen(daemon.lines))
            // From here on, what the stayer processes of the stopped daemon's
            // messages was not covered by its final commit.
            let mark = stayer.lines.count
            // The stayer takes the partitions over after one rebalance: wait
            // until it holds them all (the next start finds the group settled)
            // and processed messages that arrived after the stop.
            if await !eventually(timeout: .seconds(30), { held(stayer.lines).count == 4 && stayer.lines.count > mark + 50 }) {
                Issue.record("the stayer holds \(held(stayer.lines)); its group log: \(stayer.lines.filter { $0.contains("partitions") }.suffix(6))")
            }
            let after = Set(seen(stayer.lines.dropFirst(mark)))
            stops.append(Stop(delay: delay, status: status, signaled: status != nil && daemon.process.terminationReason == .uncaughtSignal, processed: processed, redone: processed.intersection(after),
                              commitFailed: daemon.log.contains("final commit failed"), log: daemon.log))
        }
        #expect(await stayer.terminate() == 0, "the member that stayed: \(stayer.log.suffix(1500))")
        return stops
    }

    /// `minWorked`: stops that must have found the daemon holding partitions.
    static func check(_ stops: [Stop], minWorked: Int, sourceLocation: SourceLocation = #_sourceLocation) {
        for stop in stops {
            let aborted = stop.log.split(separator: "\n").filter { $0.contains("Assertion") || $0.contains("abort") }
            #expect(stop.status == 0 && !stop.signaled, "\(stop); \(aborted.joined(separator: "\n")); log tail:\n\(stop.log.suffix(1500))", sourceLocation: sourceLocation)
            let group = stop.log.split(separator: "\n").filter { line in ["commit", "rebalanc", "revoked", "assigned", "stopped"].contains { line.contains($0) } }
            #expect(stop.redone.isEmpty && !stop.commitFailed, "\(stop): not covered by its final commit: \(stop.redone.sorted().prefix(10)); its group log:\n\(group.suffix(30).joined(separator: "\n"))", sourceLocation: sourceLocation)
        }
        // The stops must include daemons that held partitions and worked, or
        // the final commit was never put to the test.
        let worked = stops.filter { !$0.processed.isEmpty }
        #expect(worked.count >= minWorked, "only \(worked.count) of \(stops.count) stopped daemons processed anything", sourceLocation: sourceLocation)
        // Consumers closed before their first assignment on a librdkafka with issue #4312 (KafkaConsumer.close()).
        let kept = stops.filter { $0.log.contains("consumer closed before its first assignment") }.count
        print("start-up stops (\(kept) closed before their first assignment, handle kept): " + stops.map(\.description).joined(separator: "; "))
    }

    @Test("SIGTERM at 12 moments of start-up (0.2 s to 6.5 s) with the default assignor (cooperative-sticky): every exit 0, every held partition committed", .timeLimit(.minutes(3)))
    func defaultAssignor() async throws {
        // Two rounds to the first assignment (5-6 s after start): most stops
        // come before it (8 to 10 of 12 measured), the point of this test:
        // librdkafka 2.0.2 aborted closing such a consumer.
        Self.check(try await Self.run(strategy: nil), minWorked: 1)
    }

    @Test("the same with the eager assignor set in [kafka.properties]: every exit 0, every held partition committed", .timeLimit(.minutes(3)))
    func eager() async throws {
        // Assigned 2-3 s after start: half the stops find it working (6 or 7 measured).
        Self.check(try await Self.run(strategy: "range,roundrobin"), minWorked: 3)
    }
}
