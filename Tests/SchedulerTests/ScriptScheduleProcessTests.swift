import Foundation
import Testing
@testable import Scheduler

@Suite("generate.lua's named schedules across two daemon processes")
struct ScriptScheduleProcessTests {
    static func script(_ entries: String) -> String {
        """
        function generate() return nil end
        schedules = {
        \(entries)
        }
        """
    }

    @Test("two daemons with the same script hold one copy of each named schedule, fired once per slot; a reload changes one in place and removes one", .timeLimit(.minutes(3)))
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
        let daemons = try [DaemonProcess(["--config", configFile.path, "--scripts", scripts]),
                           DaemonProcess(["--config", configFile.path, "--scripts", scripts])]
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
        for daemon in daemons { #expect(await daemon.terminate() == 0) }
    }
}
