import Foundation
import Testing
@testable import Scheduler

@Suite("generate.lua's named schedules across two daemon processes", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct ScriptScheduleProcessTests {
    static func script(_ entries: String) -> String {
        """
        function generate() return nil end
        schedules = {
        \(entries)
        }
        """
    }

    /// The schedule partitions a daemon was last assigned (the schedule group is eager: each assignment is the whole set).
    static func held(_ daemon: DaemonProcess) -> Set<Int32> {
        guard let line = daemon.lines.last(where: { $0.contains("schedule partitions assigned") }),
              let open = line.range(of: "partition=["), let close = line[open.upperBound...].firstIndex(of: "]") else { return [] }
        return Set(line[open.upperBound..<close].split(separator: ",").compactMap { Int32($0.trimmingCharacters(in: .whitespaces)) })
    }

    @Test("two daemons with the same script hold one copy of each named schedule, fired once per slot; a reload changes one in place and removes one; pause, trigger and resume through the daemon that does not fire it take effect on the one that does within a second", .timeLimit(.minutes(3)))
    func twoDaemons() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: daemonBinary.path), "build the executable first (make test does)")
        let idle = try TestBroker.freshTopic("script-sched-idle")
        let output = try TestBroker.freshTopic("script-sched-out")
        let scripts = try makeScripts([
            "generate.lua": Self.script("""
                beat = { topic = "\(output)", message = "v1", every = "1s" },
                gone = { topic = "\(output)", message = "gone", every = "1s" },
                """),
            "process.lua": "function process(msg) end",
        ])
        let group = "script-sched-\(UUID().uuidString.prefix(6))"
        let configFile = try daemonConfig(next: scripts, topic: idle, group: group, workers: 1, sliceMs: 100, schedules: true,
                                          kafka: "session_timeout_ms = 4000", properties: [:])
        let apis = try await [APIDaemon.start(config: configFile, scripts: scripts), APIDaemon.start(config: configFile, scripts: scripts)]
        let daemons = apis.map(\.daemon)
        defer {
            for daemon in daemons where daemon.process.isRunning { kill(daemon.process.processIdentifier, SIGKILL) }
        }
        var fired: [FiredTask] = []
        #expect(try await eventually(timeout: .seconds(60)) {
            fired = try await firedTasks(topic: output, for: .seconds(1))
            return fired.filter { $0.id == "beat" }.count >= 4 && fired.contains { $0.id == "gone" }
        }, "\(daemons.map(\.log))")

        // Reload both with beat changed and gone removed.
        try Self.script("""
            beat = { topic = "\(output)", message = "v2", every = "1s" },
            """).write(toFile: scripts + "/generate.lua", atomically: true, encoding: .utf8)
        for daemon in daemons { kill(daemon.process.processIdentifier, SIGHUP) }
        let reloaded = RFC3339.nowMs
        #expect(try await eventually(timeout: .seconds(30)) {
            fired = try await firedTasks(topic: output, for: .seconds(1))
            return fired.filter { $0.message == "v2" }.count >= 3
        })
        fired = try await firedTasks(topic: output, for: .seconds(2))
        let beat = fired.filter { $0.id == "beat" }
        let dues = beat.map(\.dueMs)
        #expect(Set(dues).count == dues.count, "\(dues.count - Set(dues).count) slots of 'beat' fired twice")
        #expect(Set(fired.map(\.id)) == ["beat", "gone"], "ids: \(Set(fired.map(\.id)))")
        // Removed: nothing of 'gone' due well after the reload (both daemons applied it within a second or two).
        let lateGone = fired.filter { $0.id == "gone" && $0.dueMs > reloaded + 3000 }
        #expect(lateGone.isEmpty, "'gone' fired \(lateGone.count) times after the reload")
        // On the cadence it had: the change kept the grid.
        #expect(dues.allSatisfy { ($0 - dues[0]) % 1000 == 0 }, "beat dues off its grid")

        // Control through the daemon that does not fire 'beat'.
        let partition = ScheduleRecord.partition(of: "beat", partitions: 4)
        #expect(await eventually(timeout: .seconds(30)) { apis.contains { Self.held($0.daemon).contains(partition) } })
        let owner = try #require(apis.first { Self.held($0.daemon).contains(partition) })
        let other = try #require(apis.first { $0.port != owner.port })
        func ownerState() async throws -> [String: Any] { try await owner.json("/schedules/beat") as? [String: Any] ?? [:] }
        #expect(try await other.call("POST", "/schedules/beat/pause").status == 200)
        let paused = RFC3339.nowMs
        #expect(try await eventually(timeout: .seconds(10)) { try await ownerState()["state"] as? String == "paused" })
        let pauseTook = RFC3339.nowMs - paused
        #expect(try await other.call("POST", "/schedules/beat/trigger").status == 200)
        let triggered = RFC3339.nowMs
        #expect(try await eventually(timeout: .seconds(10)) { try await firedTasks(topic: output, for: .seconds(1)).contains { $0.id == "beat" && $0.dueMs >= triggered - 50 } })
        let triggerTook = (try await firedTasks(topic: output, for: .seconds(1)).first { $0.id == "beat" && $0.dueMs >= triggered - 50 }?.timestampMs ?? .max) - triggered
        print("control through the other daemon: pause shown by the owner after \(pauseTook) ms, the trigger's fire \(triggerTook) ms after its answer")
        #expect(pauseTook < 1000 && triggerTook < 1000, "pause \(pauseTook) ms, trigger \(triggerTook) ms")
        try await Task.sleep(for: .seconds(1.5))
        let whilePaused = try await firedTasks(topic: output, for: .seconds(1)).filter { $0.id == "beat" && $0.dueMs > paused + pauseTook }
        #expect(whilePaused.count == 1, "fires of 'beat' while paused: \(whilePaused.count) (the trigger's only expected)")
        #expect(try await other.call("POST", "/schedules/beat/resume").status == 200)
        let resumed = RFC3339.nowMs
        #expect(try await eventually(timeout: .seconds(10)) { try await firedTasks(topic: output, for: .seconds(1)).contains { $0.id == "beat" && $0.dueMs > resumed } })
        // The script's definition was not touched by the controls: a daemon applying it writes nothing new.
        let view = try await other.json("/schedules/beat") as? [String: Any] ?? [:]
        #expect(view["source"] as? String == "script" && view["message"] as? String == "v2" && view["state"] as? String == "active")
        for daemon in daemons { #expect(await daemon.terminate() == 0) }
    }
}
