import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
@testable import Scheduler

/// A daemon process of a shared-pool test and the port its API listens on.
struct PoolDaemon {
    let process: DaemonProcess
    let port: Int

    /// Starts the daemon and waits until its API listens and its pool was read.
    static func start(config: URL, scripts: String) async throws -> PoolDaemon {
        let process = try DaemonProcess(["--config", config.path, "--scripts", scripts, "--log-level", "info"])
        var port: Int?
        await eventually(timeout: .seconds(60)) {
            port = Self.port(in: process.log)
            return port != nil
        }
        let daemon = PoolDaemon(process: process, port: try #require(port, "no API port in:\n\(process.log.suffix(2000))"))
        #expect(await eventually(timeout: .seconds(60)) { (try? await daemon.request(.get, "/tasks").status) == .ok })
        return daemon
    }

    /// The port in the "task API listening" line.
    static func port(in log: String) -> Int? {
        guard let line = log.split(separator: "\n").first(where: { $0.contains("task API listening") }),
              let range = line.range(of: "127.0.0.1:") else { return nil }
        return Int(line[range.upperBound...].prefix { $0.isNumber })
    }

    func request(_ method: HTTPRequest.Method, _ uri: String, body: String? = nil) async throws -> TestClient.Response {
        try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
            var headers: HTTPFields = [:]
            if body != nil { headers[.contentType] = "application/json" }
            return try await client.execute(.init(uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) }))
        }
    }

    func json(_ uri: String) async throws -> Any {
        let response = try await request(.get, uri)
        return try JSONSerialization.jsonObject(with: Data(buffer: response.body ?? ByteBuffer()))
    }

    /// `GET /tasks` as `message` → `id`, in order.
    func pool() async throws -> [(message: String, id: String)] {
        let list = try await json("/tasks") as? [[String: Any]] ?? []
        return list.map { ($0["message"] as? String ?? "?", $0["id"] as? String ?? "?") }
    }

    /// SIGTERM once the daemon's worker group has its first assignment (its
    /// cooperative-sticky consumer closed before that aborts on librdkafka
    /// < 2.3.0, #4312: another part of issue 22); the exit status.
    func stop() async -> Int32? {
        await eventually(timeout: .seconds(60)) { process.log.contains("partitions assigned: ") }
        return await process.terminate()
    }

    /// Whether `GET /health` says this daemon is the pool's publisher.
    func isPublisher() async -> Bool {
        let health = try? await json("/health") as? [String: Any]
        return (health?["pool"] as? [String: Any])?["publisher"] as? Bool == true
    }
}

/// A pool task's publication read back: the task, the tick and when the broker stored it.
struct TickPublication: Hashable {
    let task: String
    let tick: Int
    let timestampMs: Int64
}

/// Every publication of `generate.lua` (`<task> tick <n>`) in `topic`.
func tickPublications(topic: String) async throws -> [TickPublication] {
    try await readAll(topic: topic, partitions: 1, count: Int.max, timeout: .seconds(2)).compactMap { message in
        let parts = message.value.utf8String.split(separator: " ")
        guard parts.count == 3, parts[1] == "tick", let tick = Int(parts[2]) else { return nil }
        return TickPublication(task: String(parts[0]), tick: tick, timestampMs: message.timestampMs)
    }
}

/// Per task: tick numbers published more than once, and tick numbers
/// missing between the first and the last one published.
func tickAnomalies(_ publications: [TickPublication]) -> (doubled: [String: [Int]], missing: [String: [Int]]) {
    var doubled: [String: [Int]] = [:]
    var missing: [String: [Int]] = [:]
    for (task, items) in Dictionary(grouping: publications, by: \.task) {
        let ticks = items.map(\.tick)
        let counts = Dictionary(ticks.map { ($0, 1) }, uniquingKeysWith: +)
        doubled[task] = counts.filter { $0.value > 1 }.keys.sorted()
        if let low = ticks.min(), let high = ticks.max() { missing[task] = (low...high).filter { counts[$0] == nil } }
    }
    return (doubled, missing)
}

@Suite("One task pool shared by several daemons", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct SharedPoolTests {
    /// Two daemon processes on one pool topic; generate.lua publishes each
    /// pool task as `<message> tick <n>` to `output` every `intervalMs`.
    func twoDaemons(intervalMs: Int, output: String, name: String) throws -> (URL, String) {
        let idle = try TestBroker.freshTopic("\(name)-idle")
        let poolTopic = try TestBroker.freshTopic("\(name)-pool", partitions: 1)
        let scripts = try makeScripts([
            "generate.lua": """
                tasks = { { topic = "\(output)", message = "p1" }, { topic = "\(output)", message = "p2" } }
                function generate(tick, pool)
                  local out = {}
                  for i, task in ipairs(pool) do out[i] = { topic = task.topic, message = task.message .. " tick " .. tick } end
                  return out
                end
                """,
            "process.lua": "function process(msg) end",
        ])
        let group = "\(name)-\(UUID().uuidString.prefix(6))"
        let config = try daemonConfig(next: scripts, topic: idle, group: group, workers: 1, sliceMs: 100,
                                      tail: "[producer]\ninterval_ms = \(intervalMs)\npool_topic = \"\(poolTopic)\"")
        return (config, scripts)
    }

    @Test("a task posted on one daemon is listed on the other within a second; deleted there by id, it is gone on the first",
          .timeLimit(.minutes(3)))
    func postHereListThere() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: daemonBinary.path), "build the executable first (make test does)")
        let output = try TestBroker.freshTopic("shared-out", partitions: 1)
        let (config, scripts) = try twoDaemons(intervalMs: 3_600_000, output: output, name: "shared")
        let first = try await PoolDaemon.start(config: config, scripts: scripts)
        let second = try await PoolDaemon.start(config: config, scripts: scripts)
        defer { for daemon in [first, second] where daemon.process.process.isRunning { kill(daemon.process.process.processIdentifier, SIGKILL) } }
        #expect(try await first.pool().map(\.message) == ["p1", "p2"])
        #expect(try await second.pool().map(\.message) == ["p1", "p2"])

        // Posted on the first: listed there at once (read-your-writes), on the second within a second.
        #expect(try await first.request(.post, "/tasks/generate", body: #"{"topic": "\#(output)", "message": "p3"}"#).status == .ok)
        let posted = ContinuousClock.now
        #expect(try await first.pool().map(\.message) == ["p1", "p2", "p3"])
        #expect(await eventually(timeout: .seconds(5)) { (try? await second.pool().map(\.message)) == ["p1", "p2", "p3"] })
        let seenAfter = ContinuousClock.now - posted
        #expect(seenAfter < .seconds(1), "the second daemon listed the task after \(seenAfter)")

        // Deleted on the second by id: gone there at once, on the first within a second.
        let id = try #require(try await second.pool().first { $0.message == "p3" }?.id)
        let removed = try await second.request(.delete, "/tasks/\(id)")
        #expect(removed.status == .ok, "\(String(buffer: removed.body ?? ByteBuffer()))")
        let deleted = ContinuousClock.now
        #expect(try await second.pool().map(\.message) == ["p1", "p2"])
        #expect(await eventually(timeout: .seconds(5)) { (try? await first.pool().map(\.message)) == ["p1", "p2"] })
        let goneAfter = ContinuousClock.now - deleted
        #expect(goneAfter < .seconds(1), "the first daemon still listed the task after \(goneAfter)")
        // By index on the first, seen on the second.
        #expect(try await first.request(.delete, "/tasks/0").status == .ok)
        #expect(await eventually(timeout: .seconds(5)) { (try? await second.pool().map(\.message)) == ["p2"] })
        print("shared pool: listed on the other daemon after \(seenAfter), removal seen after \(goneAfter)")
        for daemon in [first, second] {
            let status = await daemon.stop()
            #expect(status == 0, "exit status \(String(describing: status)); log:\n\(daemon.process.log.suffix(1500))")
        }
    }

    @Test("with two daemons each pool task is published exactly once per tick, by the one publisher",
          .timeLimit(.minutes(3)))
    func onePublisher() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: daemonBinary.path), "build the executable first (make test does)")
        let output = try TestBroker.freshTopic("ticks-out", partitions: 1)
        let (config, scripts) = try twoDaemons(intervalMs: 300, output: output, name: "ticks")
        let first = try await PoolDaemon.start(config: config, scripts: scripts)
        let second = try await PoolDaemon.start(config: config, scripts: scripts)
        defer { for daemon in [first, second] where daemon.process.process.isRunning { kill(daemon.process.process.processIdentifier, SIGKILL) } }
        // Both daemons are in the publishers' group (so either could tick); then twenty ticks.
        func joined(_ daemon: PoolDaemon) -> Bool {
            daemon.process.log.contains("another daemon publishes") || daemon.process.log.contains("is now the task pool's publisher")
        }
        #expect(await eventually(timeout: .seconds(60)) { joined(first) && joined(second) })
        var publications: [TickPublication] = []
        let start = try await tickPublications(topic: output).map(\.tick).max() ?? 0
        #expect(try await eventually(timeout: .seconds(60)) {
            publications = try await tickPublications(topic: output)
            return publications.map(\.tick).max() ?? 0 >= start + 20
        })
        let publishers = [await first.isPublisher(), await second.isPublisher()]
        #expect(publishers.filter { $0 }.count == 1, "publisher flags \(publishers)")
        let (doubled, missing) = tickAnomalies(publications)
        #expect(doubled.values.allSatisfy { $0.isEmpty }, "ticks published twice: \(doubled)")
        #expect(missing.values.allSatisfy { $0.isEmpty }, "ticks missing: \(missing)")
        #expect(Set(publications.map(\.task)) == ["p1", "p2"])
        // Each tick has both tasks (up to the last tick read whole): the per-task tick lists are the same.
        let perTask = Dictionary(grouping: publications, by: \.task).mapValues { Set($0.map(\.tick)) }
        let complete = min(perTask["p1"]?.max() ?? 0, perTask["p2"]?.max() ?? 0)
        #expect(perTask["p1"]?.filter { $0 <= complete } == perTask["p2"]?.filter { $0 <= complete })
        print("one publisher: \(publications.count) publications over ticks \(publications.map(\.tick).min() ?? 0)...\(publications.map(\.tick).max() ?? 0)")
        for daemon in [first, second] {
            let status = await daemon.stop()
            #expect(status == 0, "exit status \(String(describing: status)); log:\n\(daemon.process.log.suffix(1500))")
        }
    }

    @Test("the publisher SIGKILLed, then the next one SIGTERMed: another daemon takes over each time within session timeout + join, with at most one tick doubled or missing per change",
          .timeLimit(.minutes(4)))
    func publisherFailover() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: daemonBinary.path), "build the executable first (make test does)")
        let output = try TestBroker.freshTopic("failover-ticks", partitions: 1)
        let intervalMs = 500
        let (config, scripts) = try twoDaemons(intervalMs: intervalMs, output: output, name: "takeover")
        var daemons = [try await PoolDaemon.start(config: config, scripts: scripts), try await PoolDaemon.start(config: config, scripts: scripts)]
        defer { for daemon in daemons where daemon.process.process.isRunning { kill(daemon.process.process.processIdentifier, SIGKILL) } }
        // Session timeout 3 s (daemonConfig), a join ~3 s on the embedded broker, and a margin for a loaded machine.
        let limitMs: Int64 = 3000 + 3000 + 4000
        var gaps: [Int64] = []

        for stop in ["SIGKILL", "SIGTERM"] {
            var publisher: PoolDaemon?
            let elected = await eventually(timeout: .seconds(60)) {
                for daemon in daemons where daemon.process.process.isRunning {
                    if await daemon.isPublisher() { publisher = daemon }
                }
                return publisher != nil
            }
            #expect(elected)
            let old = try #require(publisher)
            // A few ticks of the current publisher, then the stop.
            let before = try await tickPublications(topic: output).map(\.tick).max() ?? 0
            #expect(try await eventually(timeout: .seconds(30)) { (try await tickPublications(topic: output).map(\.tick).max() ?? 0) >= before + 3 })
            let stoppedMs = RFC3339.nowMs
            if stop == "SIGKILL" {
                kill(old.process.process.processIdentifier, SIGKILL)
                old.process.process.waitUntilExit()
            } else {
                let status = await old.stop()
                #expect(status == 0, "exit status \(String(describing: status)); log:\n\(old.process.log.suffix(2000))")
            }
            let survivor = try #require(daemons.first { $0.process.process.isRunning })
            // The survivor publishes the next ticks.
            var after: [TickPublication] = []
            #expect(try await eventually(timeout: .seconds(60)) {
                after = try await tickPublications(topic: output).filter { $0.timestampMs > stoppedMs + 50 }
                return Set(after.map(\.tick)).count >= 3
            })
            #expect(await survivor.isPublisher())
            let gap = (after.map(\.timestampMs).min() ?? Int64.max) - stoppedMs
            gaps.append(gap)
            #expect(gap < limitMs, "\(stop): no tick for \(gap) ms after the stop")
            // A new daemon joins for the next round.
            daemons = [survivor]
            if stop == "SIGKILL" { daemons.append(try await PoolDaemon.start(config: config, scripts: scripts)) }
        }

        let publications = try await tickPublications(topic: output)
        let (doubled, missing) = tickAnomalies(publications)
        let doubledTicks = Set(doubled.values.flatMap { $0 })
        let missingTicks = Set(missing.values.flatMap { $0 })
        print("publisher failover: gaps \(gaps) ms (SIGKILL, SIGTERM); ticks doubled \(doubledTicks.sorted()), missing \(missingTicks.sorted()); \(publications.count) publications")
        // At most one tick doubled or missing per change (two changes).
        #expect(doubledTicks.count + missingTicks.count <= 2, "doubled \(doubled), missing \(missing)")
        // No tick published more than twice.
        let counts = Dictionary(publications.map { ("\($0.task) \($0.tick)", 1) }, uniquingKeysWith: +)
        #expect(counts.values.allSatisfy { $0 <= 2 })
        for daemon in daemons {
            let status = await daemon.stop()
            #expect(status == 0, "exit status \(String(describing: status)); log:\n\(daemon.process.log.suffix(1500))")
        }
    }
}
