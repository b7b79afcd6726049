import Foundation
import Testing
@testable import Scheduler

/// A daemon process and its HTTP API (the port it logged).
struct APIDaemon: Sendable {
    let daemon: DaemonProcess
    let port: Int

    /// Starts a daemon and waits until its API listens.
    static func start(config: URL, scripts: String) async throws -> APIDaemon {
        let daemon = try DaemonProcess(["--config", config.path, "--scripts", scripts])
        var port: Int?
        _ = await eventually(timeout: .seconds(60)) {
            port = daemon.lines.first { $0.contains("task API listening") }
                .flatMap { line in line.range(of: #"listen=[0-9.]+:[0-9]+"#, options: .regularExpression).map { line[$0] } }
                .flatMap { Int($0.split(separator: ":").last ?? "") }
            return port != nil || !daemon.process.isRunning
        }
        return APIDaemon(daemon: daemon, port: try #require(port, "no API port in the log:\n\(daemon.log.suffix(2000))"))
    }

    /// `METHOD path` on the daemon's API (curl, on a thread of its own): status and body.
    func call(_ method: String, _ path: String, body: String? = nil) async throws -> (status: Int, body: String) {
        let url = "http://127.0.0.1:\(port)\(path)"
        let thread = DedicatedThread(name: "curl")
        defer { thread.stop() }
        return try await thread.run {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            process.arguments = ["-s", "-m", "10", "-X", method, "-w", "\n%{http_code}"]
                + (body.map { ["-H", "Content-Type: application/json", "-d", $0] } ?? []) + [url]
            let output = Pipe()
            process.standardOutput = output
            try launch(process)
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            let text = String(decoding: data, as: UTF8.self)
            let split = text.split(separator: "\n", omittingEmptySubsequences: false)
            return (Int(split.last ?? "") ?? 0, split.dropLast().joined(separator: "\n"))
        }
    }

    /// `GET path` as JSON.
    func json(_ path: String) async throws -> Any {
        let (status, body) = try await call("GET", path)
        guard status == 200 else { throw CallFailed(description: "GET \(path): \(status) \(body)") }
        return try JSONSerialization.jsonObject(with: Data(body.utf8))
    }

    /// The schedules in `GET /tasks`, by id.
    func schedules() async throws -> [String: [String: Any]] {
        let list = try await json("/tasks") as? [[String: Any]] ?? []
        return Dictionary(list.compactMap { entry in (entry["id"] as? String).map { ($0, entry) } }, uniquingKeysWith: { a, _ in a })
    }

    /// `GET /cluster`: the answering daemon's id and every daemon by id.
    func cluster() async throws -> (selfID: String, daemons: [String: [String: Any]]) {
        let view = try await json("/cluster") as? [String: Any] ?? [:]
        let daemons = view["daemons"] as? [[String: Any]] ?? []
        return (view["self_id"] as? String ?? "", Dictionary(daemons.map { ($0["id"] as? String ?? "", $0) }, uniquingKeysWith: { a, _ in a }))
    }
}

/// An API call that did not answer 200.
struct CallFailed: Error, CustomStringConvertible {
    let description: String
}

/// A daemon's report in a `GET /cluster` entry.
func reported(_ daemon: [String: Any]?) -> [String: Any] { daemon?["report"] as? [String: Any] ?? [:] }

/// The partitions a `GET /cluster` entry says the daemon holds in its groups, as `topic[p]`.
func heldPartitions(_ daemon: [String: Any]?) -> [String] {
    (reported(daemon)["groups"] as? [[String: Any]] ?? []).flatMap { group in
        (group["partitions"] as? [[String: Any]] ?? []).map { "\($0["topic"] ?? "")[\($0["partition"] ?? "")]" }
    }
}

/// The schedule partitions a `GET /cluster` entry says the daemon holds.
func schedulePartitions(_ daemon: [String: Any]?) -> [Int] { reported(daemon)["schedule_partitions"] as? [Int] ?? [] }

/// A config for daemons that report to `reports` every `intervalMs`.
func clusterConfig(scripts: String, topic: String, group: String, reports: String, intervalMs: Int) throws -> URL {
    try TestBroker.shared.createTopic(reports, partitions: 1)
    return try daemonConfig(next: scripts, topic: topic, group: group, workers: 1, sliceMs: 100,
                            tail: "[cluster]\nreports_topic = \"\(reports)\"\nreport_interval_ms = \(intervalMs)", schedules: true)
}

@Suite("Several daemons, one view", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct ClusterProcessTests {
    @Test("schedules posted to either daemon are listed on both with their owner; one cancelled through the daemon not owning it stops firing",
          .timeLimit(.minutes(4)))
    func schedulesOnEveryDaemon() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: daemonBinary.path), "build the executable first (make test does)")
        let idle = try TestBroker.freshTopic("cluster-idle")
        let output = try TestBroker.freshTopic("cluster-fired")
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": "function process(msg) end"])
        let group = "cluster-s-\(UUID().uuidString.prefix(6))"
        let config = try clusterConfig(scripts: scripts, topic: idle, group: group, reports: "\(group)-reports", intervalMs: 500)
        let first = try await APIDaemon.start(config: config, scripts: scripts)
        let second = try await APIDaemon.start(config: config, scripts: scripts)
        defer { for daemon in [first, second] where daemon.daemon.process.isRunning { kill(daemon.daemon.process.processIdentifier, SIGKILL) } }
        let ids = [try await first.cluster().selfID, try await second.cluster().selfID]

        // Both hold schedule partitions, as both daemons' views say.
        #expect(try await eventually(timeout: .seconds(90)) {
            let view = try await first.cluster().daemons
            let parts = ids.map { schedulePartitions(view[$0]) }
            return parts.allSatisfy { !$0.isEmpty } && Set(parts.flatMap { $0 }) == [0, 1, 2, 3] && parts.joined().count == 4
        })

        var posted: [String] = []
        for index in 0..<8 {
            let daemon = index % 2 == 0 ? first : second
            let (status, body) = try await daemon.call("POST", "/tasks/generate", body: #"{"topic": "\#(output)", "message": "m\#(index)", "every": "3s"}"#)
            #expect(status == 200, "\(body)")
            let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
            posted.append(try #require(object?["id"] as? String))
        }
        // Every schedule on both daemons, each with the same owner: the daemon whose report lists its partition.
        var listings: [[String: [String: Any]]] = []
        let listed = try await eventually(timeout: .seconds(30)) {
            listings = [try await first.schedules(), try await second.schedules()]
            return listings.allSatisfy { listing in posted.allSatisfy { listing[$0]?["owner"] is String } }
        }
        #expect(listed, "GET /tasks: \(listings.map { $0.mapValues { $0["owner"] ?? "none" } })")
        let view = try await first.cluster().daemons
        for id in posted {
            let owners = listings.map { $0[id]?["owner"] as? String }
            #expect(owners[0] == owners[1], "schedule \(id): owners \(owners)")
            let partition = Int(ScheduleRecord.partition(of: id, partitions: 4))
            #expect(owners[0].map { schedulePartitions(view[$0]).contains(partition) } == true, "schedule \(id) in partition \(partition): owner \(owners)")
        }

        // A schedule the first daemon owns, cancelled through the second, right after one of its fires.
        let victim = try #require(posted.first { listings[1][$0]?["owner"] as? String == ids[0] }, "the first daemon owns none of \(posted)")
        var lastFire: Int64 = 0
        #expect(try await eventually(timeout: .seconds(30)) {
            let fires = try await firedTasks(topic: output, for: .seconds(1)).filter { $0.id == victim }
            guard let latest = fires.map(\.timestampMs).max() else { return false }
            defer { lastFire = latest }
            return lastFire != 0 && latest > lastFire && RFC3339.nowMs - latest < 1500
        }, "the schedule never fired")
        let (status, body) = try await second.call("DELETE", "/tasks/\(victim)")
        let answered = RFC3339.nowMs
        #expect(status == 200, "\(body)")
        // Wait for the others to fire past the victim's next due time (3 s
        // after its last fire) and one more period: the reader that sees
        // them would have seen the victim's fire.
        var fired: [FiredTask] = []
        #expect(try await eventually(timeout: .seconds(30)) {
            fired = try await firedTasks(topic: output, for: .seconds(1))
            return fired.contains { $0.id != victim && $0.timestampMs > answered + 6000 }
        }, "the other schedules stopped firing")
        let after = fired.filter { $0.id == victim && $0.timestampMs > answered }
        #expect(after.isEmpty, "fired \(after.count) times after the cancel was answered")
        let remaining = [try await first.schedules()[victim] == nil, try await second.schedules()[victim] == nil]
        #expect(remaining == [true, true], "the cancelled schedule is still listed")
        for daemon in [first, second] { #expect(await daemon.daemon.terminate() == 0) }
    }

    @Test("GET /cluster on both daemons lists both live with what they hold; one stopped with SIGTERM shows as gone at once, one killed with SIGKILL after three intervals",
          .timeLimit(.minutes(4)))
    func clusterView() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: daemonBinary.path), "build the executable first (make test does)")
        let topic = try TestBroker.freshTopic("cluster-work", partitions: 4)
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": "function process(msg) end"])
        let group = "cluster-v-\(UUID().uuidString.prefix(6))"
        let intervalMs = 1000
        let config = try clusterConfig(scripts: scripts, topic: topic, group: group, reports: "\(group)-reports", intervalMs: intervalMs)
        let first = try await APIDaemon.start(config: config, scripts: scripts)
        let second = try await APIDaemon.start(config: config, scripts: scripts)
        defer { for daemon in [first, second] where daemon.daemon.process.isRunning { kill(daemon.daemon.process.processIdentifier, SIGKILL) } }
        let ids = [try await first.cluster().selfID, try await second.cluster().selfID]
        #expect(ids[0] != ids[1] && !ids[0].isEmpty)

        // Both views: both live, the group's four partitions split between them, each schedule partition held once.
        for daemon in [first, second] {
            var seen: [String: [String: Any]] = [:]
            let settled = try await eventually(timeout: .seconds(90)) {
                seen = try await daemon.cluster().daemons
                let held = ids.map { heldPartitions(seen[$0]) }
                return ids.allSatisfy { seen[$0]?["status"] as? String == "live" }
                    && held.allSatisfy { !$0.isEmpty } && Set(held.joined()).count == 4 && held.joined().count == 4
                    && ids.map { schedulePartitions(seen[$0]) }.joined().sorted() == [0, 1, 2, 3]
            }
            #expect(settled, "\(seen.mapValues { "\($0["status"] ?? "?") \(heldPartitions($0)) \(schedulePartitions($0))" })")
            // Where each one's API listens, as its own process bound it.
            #expect(reported(seen[ids[0]])["api"] as? String == "127.0.0.1:\(first.port)")
            #expect(reported(seen[ids[1]])["api"] as? String == "127.0.0.1:\(second.port)")
        }

        // SIGTERM: its last report says stopped; the other shows it gone at once.
        #expect(await first.daemon.terminate() == 0)
        let exited = ContinuousClock.now
        var entry: [String: Any]?
        #expect(try await eventually(timeout: .seconds(10)) {
            entry = try await second.cluster().daemons[ids[0]]
            return entry?["status"] as? String == "gone"
        })
        let termDelay = ContinuousClock.now - exited
        #expect(entry?["gone_because"] as? String == "stopped", "\(String(describing: entry))")
        #expect(termDelay < .milliseconds(1500), "shown as gone \(termDelay) after the exit")
        #expect(heldPartitions(entry).isEmpty && schedulePartitions(entry).isEmpty)

        // SIGKILL: nothing said; gone after three silent intervals.
        let third = try await APIDaemon.start(config: config, scripts: scripts)
        defer { if third.daemon.process.isRunning { kill(third.daemon.process.processIdentifier, SIGKILL) } }
        let thirdID = try await third.cluster().selfID
        #expect(try await eventually(timeout: .seconds(30)) { try await second.cluster().daemons[thirdID]?["status"] as? String == "live" })
        kill(third.daemon.process.processIdentifier, SIGKILL)
        third.daemon.process.waitUntilExit()
        let killed = ContinuousClock.now
        #expect(try await eventually(timeout: .seconds(20)) {
            entry = try await second.cluster().daemons[thirdID]
            return entry?["status"] as? String == "gone"
        })
        let killDelay = ContinuousClock.now - killed
        #expect(entry?["gone_because"] as? String == "silent", "\(String(describing: entry))")
        // Three intervals after its last report (made up to an interval before the kill), plus a poll.
        #expect(killDelay >= .milliseconds(2 * intervalMs) && killDelay < .milliseconds(3 * intervalMs + 3000), "gone \(killDelay) after the kill")
        print("cluster view: SIGTERM shown as gone after \(termDelay), SIGKILL after \(killDelay) (interval \(intervalMs) ms)")
        #expect(await second.daemon.terminate() == 0)
    }
}

@Suite("GET /tasks lists schedules in order, up to a limit", .sharesMachine)
struct ScheduleListingTests {
    /// Pool entries carry an id too; schedule ids start with "s-".
    static func isSchedule(_ entry: [String: Any]) -> Bool { (entry["id"] as? String)?.hasPrefix("s-") == true }

    @Test("?limit=N lists the pool and the N schedules due first, each with this daemon as owner; a bad limit is 400 naming it")
    func limit() async throws {
        try await withApplication(schedulingConfig()) { client in
            #expect(try await eventually { try await schedulesLive(client) })
            let now = RFC3339.nowMs
            var ids: [String] = []
            // Posted latest first: the listing must order them.
            for offset in [5, 4, 3, 2, 1] {
                let posted = try await postSchedule(client, #"{"topic": "E", "message": "m\#(offset)", "at": "\#(RFC3339.format(now + Int64(offset) * 3_600_000))"}"#)
                ids.append(try #require(posted["id"] as? String))
            }
            let all = try await poolList(client).filter(Self.isSchedule)
            #expect(all.compactMap { $0["message"] as? String } == ["m1", "m2", "m3", "m4", "m5"])
            let response = try await client.execute(uri: "/tasks?limit=2", method: .get)
            let limited = try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [[String: Any]])
            let poolCount = try await poolList(client).filter { !Self.isSchedule($0) }.count
            #expect(limited.filter { !Self.isSchedule($0) }.count == poolCount, "the limit is for schedules only")
            #expect(limited.compactMap { $0["message"] as? String }.suffix(2) == ["m1", "m2"])
            #expect(limited.filter(Self.isSchedule).count == 2)
            let cluster = try JSONSerialization.jsonObject(with: Data(buffer: try await client.execute(uri: "/cluster", method: .get).body)) as? [String: Any]
            #expect(all.allSatisfy { $0["owner"] as? String == cluster?["self_id"] as? String })
            let health = try JSONSerialization.jsonObject(with: Data(buffer: try await client.execute(uri: "/health", method: .get).body)) as? [String: Any]
            let catalog = (health?["schedules"] as? [String: Any])?["catalog"] as? [String: Any]
            #expect(catalog?["live"] as? Bool == true && catalog?["schedules"] as? Int == 5, "\(String(describing: catalog))")
            let bad = try await client.execute(uri: "/tasks?limit=-1", method: .get)
            #expect(bad.status == .badRequest && String(buffer: bad.body).contains("limit must be a non-negative integer"))
        }
    }
}
