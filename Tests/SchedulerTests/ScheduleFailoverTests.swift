import Foundation
import Testing
@testable import Scheduler

@Suite("Schedules across daemons and from process()", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct ScheduleFailoverTests {
    @Test("process() schedules a follow-up per message under load: each stored with its message, each fired once, never early")
    func processFollowUps() async throws {
        let input = try TestBroker.freshTopic("follow-in")
        let output = try TestBroker.freshTopic("follow-out")
        let total = 600
        try await publishKeyed(topic: input, count: total, keys: 16)
        let scripts = try makeScripts([
            "generate.lua": idleGenerate,
            "process.lua": """
                function process(msg)
                  scheduler.schedule{topic = "\(output)", message = "follow " .. msg.payload, key = msg.key, after = "1s"}
                end
                """,
        ])
        var config = poolConfig(topics: [input], workers: 3, sliceMs: 30)
        config.schedules.enabled = true
        let fired = try await withPool(config, scripts: scripts, logger: quietLogger) { () async throws -> [FiredTask] in
            var fired: [FiredTask] = []
            #expect(try await eventually(timeout: .seconds(60)) {
                fired = try await firedTasks(topic: output, for: .seconds(2))
                return Set(fired.map(\.message)).count >= total
            })
            return fired
        }
        let distinct = Set(fired.map(\.message))
        #expect(distinct.count == total, "lost \(total - distinct.count) follow-ups")
        #expect(fired.count == distinct.count, "\(fired.count - distinct.count) follow-ups fired twice")
        #expect(fired.allSatisfy { $0.timestampMs >= $0.dueMs }, "a follow-up fired early")
    }

    @Test("a schedule made by process() is stored before that message's offset is committed, even with the broker slow to acknowledge")
    func storedBeforeCommit() async throws {
        let rig = try await EmitRig(partitions: 2, total: 600, keys: 20, workers: 2, busySeconds: 0.002, process: """
            local clock = os.clock
            function process(msg)
              local t = clock() while clock() - t < 0.002 do end
              scheduler.schedule{topic = "out", message = msg.partition .. ":" .. msg.offset, at = "2099-01-01T00:00:00Z"}
              scheduler.log("notice", "seen " .. msg.partition .. " " .. msg.offset)
            end
            """)
        let (broker, capture, config, total) = (rig.broker, rig.capture, rig.config, rig.total)
        defer { broker.shutdown() }
        try broker.createTopic(config.schedules.topic, partitions: config.schedules.partitions)
        let observer = try KafkaConsumer.make(bootstrapServers: broker.bootstrapServers, groupID: config.groups[0].name)
        defer { observer.close() }
        // The inputs (`<partition>:<offset>`) whose schedule is in the schedule topic.
        @Sendable func stored() async throws -> Set<String> {
            let records = try await read(broker, topic: config.schedules.topic, partitions: config.schedules.partitions)
            return Set(records.compactMap { message -> String? in
                guard case .schedule(let schedule)? = try? ScheduleRecord(key: message.key, value: message.value, offset: message.offset) else { return nil }
                return schedule.task.message
            })
        }
        let (samples, violations, all) = try await withPool(config, scripts: rig.scripts, logger: capture.logger) { () async throws -> (Int, [String], Set<String>) in
            #expect(await eventually { capture.lines(startingWith: "seen ").count >= 50 })
            broker.delayNext(.produce, count: 6, milliseconds: 1500)
            var samples = 0
            var violations: [String] = []
            var all: Set<String> = []
            #expect(try await eventually(timeout: .seconds(90)) {
                let committed = try await offThePool {
                    try observer.committed((0..<2).map { PartitionOffset(topic: "in", partition: Int32($0), offset: -1) }, timeoutMs: 5000)
                }
                all = try await stored()
                for position in committed where position.offset > 0 {
                    samples += 1
                    for offset in 0..<position.offset where !all.contains("\(position.partition):\(offset)") {
                        violations.append("\(position.partition):\(offset) committed (at \(position.offset)) before its schedule was stored")
                    }
                }
                return committed.reduce(0) { $0 + max(0, $1.offset) } >= total
            })
            return (samples, violations, try await stored())
        }
        // The commit was seen moving at least twice while the run went on (a fast run gives few samples).
        #expect(samples >= 2, "the commit was observed while the run went on")
        #expect(violations.isEmpty, "\(violations.count) violations, e.g. \(violations.prefix(3))")
        #expect(all.count == total, "\(total - all.count) schedules missing")
    }

    @Test("two daemons share the schedules; one is killed with SIGKILL: every schedule keeps firing, none missed, at most one doubled per schedule")
    func sigkillFailover() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: daemonBinary.path), "build the executable first (make test does)")
        let idle = try TestBroker.freshTopic("failover-idle")
        let output = try TestBroker.freshTopic("failover-out")
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": "function process(msg) end"])
        let group = "failover-\(UUID().uuidString.prefix(6))"
        let configFile = try daemonConfig(next: scripts, topic: idle, group: group, workers: 1, sliceMs: 100, schedules: true)
        let scheduleTopic = "\(group)-schedules"
        let first = try DaemonProcess(["--config", configFile.path, "--scripts", scripts])
        let second = try DaemonProcess(["--config", configFile.path, "--scripts", scripts])
        defer {
            for daemon in [first, second] where daemon.process.isRunning { kill(daemon.process.processIdentifier, SIGKILL) }
        }
        func owns(_ daemon: DaemonProcess) -> Bool { daemon.log.contains("schedule partition read") }
        #expect(await eventually(timeout: .seconds(60)) { owns(first) && owns(second) })

        // Twenty schedules every second, written as the API writes them.
        let count = 20
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 10_000)
        let placement = SchedulePlacement(topic: scheduleTopic, partitions: 4, publish: nil)
        var ids: [String] = []
        for index in 0..<count {
            let (schedule, message) = try placement.create(task: TaskSpec(topic: output, message: "s\(index)"),
                                                           kind: .every(ms: 1000, anchor: RFC3339.nowMs), now: RFC3339.nowMs)
            ids.append(schedule.id)
            _ = try await producer.send(message)
        }
        await producer.close(timeoutMs: 5000)
        var fired: [FiredTask] = []
        #expect(try await eventually(timeout: .seconds(30)) {
            fired = try await firedTasks(topic: output, for: .seconds(2))
            return ids.allSatisfy { id in fired.filter { $0.id == id }.count >= 3 }
        })
        let killed = RFC3339.nowMs
        kill(first.process.processIdentifier, SIGKILL)
        first.process.waitUntilExit()
        // The survivor takes the partitions over (after the session timeout) and every schedule fires on.
        #expect(try await eventually(timeout: .seconds(60)) {
            fired = try await firedTasks(topic: output, for: .seconds(2))
            return ids.allSatisfy { id in fired.filter { $0.id == id && $0.timestampMs > killed + 1000 }.count >= 3 }
        })
        // The takeover happened: before the kill the first daemon held part of
        // the topic; the survivor ends up holding all of it.
        func lastAssignment(_ daemon: DaemonProcess) -> Substring? { daemon.lines.last { $0.contains("schedule partitions assigned") } }
        #expect(lastAssignment(first).map { !$0.contains("[0, 1, 2, 3]") && !$0.contains("[]") } == true, "\(String(describing: lastAssignment(first)))")
        #expect(lastAssignment(second)?.contains("[0, 1, 2, 3]") == true, "\(String(describing: lastAssignment(second)))")
        #expect(await second.terminate() == 0)
        fired = try await firedTasks(topic: output, for: .seconds(3))

        var doubled = 0
        var missed = 0
        var details: [String] = []
        for id in ids {
            let fires = fired.filter { $0.id == id }.sorted { ($0.dueMs, $0.timestampMs) < ($1.dueMs, $1.timestampMs) }
            let dues = fires.map(\.dueMs)
            let twice = dues.count - Set(dues).count
            doubled += twice
            #expect(twice <= 1, "schedule \(id) fired \(twice) dues twice")
            // A gap in the dues is allowed only right after a catch-up fire (taken
            // a period or more late: it stands for the whole missed period).
            let unique = fires.reduce(into: [FiredTask]()) { if $0.last?.dueMs != $1.dueMs { $0.append($1) } }
            for (earlier, later) in zip(unique, unique.dropFirst()) where later.dueMs - earlier.dueMs > 1000 {
                if earlier.timestampMs - earlier.dueMs < 1000 {
                    missed += 1
                    details.append("due \(earlier.dueMs - killed) fired at \(earlier.timestampMs - killed), next due \(later.dueMs - killed) (ms from the kill)")
                }
            }
        }
        print("SIGKILL failover: \(fired.count) fires of \(count) schedules; \(doubled) doubled, \(missed) missed")
        #expect(missed == 0, "\(details)")
        #expect(doubled <= count)
    }

    @Test("the daemon holding a due schedule is killed: the survivor fires it exactly once within the session timeout ([kafka] session_timeout_ms, also the schedule group's) plus a join", .timeLimit(.minutes(2)))
    func failoverInSeconds() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: daemonBinary.path), "build the executable first (make test does)")
        let idle = try TestBroker.freshTopic("fast-failover-idle")
        let output = try TestBroker.freshTopic("fast-failover-out")
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": "function process(msg) end"])
        let group = "fast-failover-\(UUID().uuidString.prefix(6))"
        // The session timeout only through the new key: nothing in [kafka.properties].
        let sessionMs: Int64 = 4000
        let configFile = try daemonConfig(next: scripts, topic: idle, group: group, workers: 1, sliceMs: 100, schedules: true,
                                          kafka: "session_timeout_ms = \(sessionMs)", properties: [:])
        let daemons = try [DaemonProcess(["--config", configFile.path, "--scripts", scripts]),
                           DaemonProcess(["--config", configFile.path, "--scripts", scripts])]
        defer {
            for daemon in daemons where daemon.process.isRunning { kill(daemon.process.processIdentifier, SIGKILL) }
        }
        /// The schedule partitions a daemon was last assigned (cooperative: the union of its increments is not needed, the eager default assigns all at once).
        func held(_ daemon: DaemonProcess) -> Set<Int32> {
            guard let line = daemon.lines.last(where: { $0.contains("schedule partitions assigned") }),
                  let open = line.range(of: "partition=["), let close = line[open.upperBound...].firstIndex(of: "]") else { return [] }
            return Set(line[open.upperBound..<close].split(separator: ",").compactMap { Int32($0.trimmingCharacters(in: .whitespaces)) })
        }
        func live(_ daemon: DaemonProcess) -> Bool { daemon.log.contains("schedule partition read") }
        #expect(await eventually(timeout: .seconds(60)) {
            daemons.allSatisfy(live) && held(daemons[0]).count + held(daemons[1]).count == 4 && held(daemons[0]).isDisjoint(with: held(daemons[1]))
        }, "\(held(daemons[0])) / \(held(daemons[1]))")

        // One schedule, due 3 s after it is written, as the API writes it.
        let placement = SchedulePlacement(topic: "\(group)-schedules", partitions: 4, publish: nil)
        let due = RFC3339.nowMs + 3000
        let (schedule, message) = try placement.create(task: TaskSpec(topic: output, message: "once"), kind: .at(due), now: RFC3339.nowMs)
        let partition = try #require(message.partition)
        let owner = try #require(daemons.first { held($0).contains(partition) }, "nobody holds partition \(partition)")
        let survivor = daemons.first { $0 !== owner }!
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 10_000)
        _ = try await producer.send(message)
        await producer.close(timeoutMs: 5000)
        kill(owner.process.processIdentifier, SIGKILL)
        let killed = RFC3339.nowMs
        owner.process.waitUntilExit()

        // The session expires, the survivor joins again (one round on the
        // mock broker: about 1-3 s), reads the partition and fires at once.
        let bound = sessionMs + 3000 + 5000
        var fired: [FiredTask] = []
        #expect(try await eventually(timeout: .seconds(60)) {
            fired = try await firedTasks(topic: output, for: .seconds(2)).filter { $0.id == schedule.id }
            return !fired.isEmpty
        })
        let late = (fired.first?.timestampMs ?? Int64.max) - killed
        // Anything doubled would follow within moments: look again.
        try await Task.sleep(for: .seconds(2))
        fired = try await firedTasks(topic: output, for: .seconds(3)).filter { $0.id == schedule.id }
        print("schedule failover: fired \(fired.count) time(s), \(late) ms after the kill (due \(due - killed) ms after it; session \(sessionMs) ms)")
        #expect(fired.count == 1, "fired \(fired.count) times")
        #expect(late <= bound, "fired \(late) ms after the kill; at most \(bound) expected")
        #expect(held(survivor) == [0, 1, 2, 3], "the survivor holds \(held(survivor))")
        #expect(await survivor.terminate() == 0)
    }
}
