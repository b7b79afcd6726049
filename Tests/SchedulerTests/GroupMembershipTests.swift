import Foundation
import Testing
@testable import Scheduler

@Suite("Group membership: assignor, session timeout, static members", .sharesMachine)
struct GroupMembershipTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let configured: String?
        let version: Int32
        let strategy: String
        let aborts: Bool
        let reason: String
        var testDescription: String { "\(configured ?? "default") on \(AssignorChoice.versionName(version))" }
    }

    @Test("cooperative-sticky unless configured; only cooperative-sticky before 2.3.0 aborts when closed unassigned, and the reason says the handle is kept", arguments: [
        Case(configured: nil, version: 0x0200_02ff, strategy: "cooperative-sticky", aborts: true, reason: "keeps its handle"),
        Case(configured: nil, version: 0x0202_00ff, strategy: "cooperative-sticky", aborts: true, reason: "2.2.0"),
        Case(configured: nil, version: 0x0203_00ff, strategy: "cooperative-sticky", aborts: false, reason: "incremental"),
        Case(configured: nil, version: 0x0206_01ff, strategy: "cooperative-sticky", aborts: false, reason: "incremental"),
        Case(configured: "cooperative-sticky", version: 0x0200_02ff, strategy: "cooperative-sticky", aborts: true, reason: "keeps its handle"),
        Case(configured: "cooperative-sticky", version: 0x0203_00ff, strategy: "cooperative-sticky", aborts: false, reason: "set in [kafka.properties]"),
        Case(configured: "roundrobin", version: 0x0200_02ff, strategy: "roundrobin", aborts: false, reason: "set in [kafka.properties]"),
        Case(configured: "range", version: 0x0203_00ff, strategy: "range", aborts: false, reason: "set in [kafka.properties]"),
    ])
    func assignorChoice(_ row: Case) {
        let choice = AssignorChoice.choose(configured: row.configured, version: row.version)
        #expect(choice.strategy == row.strategy)
        #expect(choice.reason.contains(row.reason), "\(choice.reason)")
        #expect(AssignorChoice.closeBeforeAssignmentAborts(strategy: choice.strategy, version: row.version) == row.aborts)
    }

    @Test("the version is named as librdkafka names it")
    func versionName() {
        #expect(AssignorChoice.versionName(0x0200_02ff) == "2.0.2")
        #expect(AssignorChoice.versionName(0x0203_00ff) == "2.3.0")
        #expect(AssignorChoice.versionName(0x0a0b_0cff) == "10.11.12")
    }

    @Test("every group consumer gets the session timeout, a heartbeat under a third of it, the assignor and, when set, a static id per group; [kafka.properties] wins")
    func properties() {
        let dynamic = GroupMembership(sessionTimeoutMs: 4000).properties(group: "g", user: [:])
        #expect(dynamic["session.timeout.ms"] == "4000")
        #expect(dynamic["heartbeat.interval.ms"] == "1200")
        #expect(dynamic["partition.assignment.strategy"] == AssignorChoice.standard.strategy)
        #expect(dynamic["group.instance.id"] == nil)
        #expect(GroupMembership().properties(group: "g", user: [:])["session.timeout.ms"] == "10000")

        let fixed = GroupMembership(instanceID: "host-1")
        #expect(fixed.properties(group: "workers", user: [:])["group.instance.id"] == "host-1-workers")
        #expect(fixed.properties(group: "task-scheduler.schedules", user: [:])["group.instance.id"] == "host-1-task-scheduler.schedules")

        let user = fixed.properties(group: "g", user: ["session.timeout.ms": "3000", "partition.assignment.strategy": "roundrobin", "group.instance.id": "mine"])
        #expect(user["session.timeout.ms"] == "3000" && user["partition.assignment.strategy"] == "roundrobin" && user["group.instance.id"] == "mine")
    }

    @Test("[kafka] session_timeout_ms and instance_id are read and become the membership")
    func configKeys() throws {
        let config = try ConfigLoader.parse("""
            [kafka]
            session_timeout_ms = 6000
            instance_id = "node-a.1"
            """, file: "m.toml")
        #expect(config.kafka.membership == GroupMembership(sessionTimeoutMs: 6000, instanceID: "node-a.1"))
        #expect(SchedulerConfig().kafka.membership == GroupMembership(sessionTimeoutMs: 10_000, instanceID: ""))
    }

    @Test("a session timeout out of range or an instance id Kafka refuses is an error naming the key and line", arguments: [
        ("[kafka]\nsession_timeout_ms = 999", "m.toml:2: key 'kafka.session_timeout_ms'", "between 1000 and 300000, got 999"),
        ("[kafka]\nsession_timeout_ms = 300001", "m.toml:2: key 'kafka.session_timeout_ms'", "got 300001"),
        ("[kafka]\npartitions = 4\ninstance_id = \"node a\"", "m.toml:3: key 'kafka.instance_id'", "contains ' '"),
        ("[kafka]\ninstance_id = \"\(String(repeating: "x", count: 201))\"", "key 'kafka.instance_id'", "at most 200"),
        ("[kafka]\nsession_timeout_ms = \"10s\"", "key 'kafka.session_timeout_ms'", "expected integer"),
    ])
    func badKeys(_ text: String, _ key: String, _ message: String) {
        #expect {
            _ = try ConfigLoader.parse(text, file: "m.toml")
        } throws: { error in
            "\(error)".contains(key) && "\(error)".contains(message)
        }
    }
}
