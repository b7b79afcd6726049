import Foundation
import Testing
@testable import Scheduler

@Suite("Schedule kinds: durations, due times, catch-up", .sharesMachine)
struct ScheduleKindTests {
    @Test("durations", arguments: [
        ("90s", Int64(90_000)), ("10m", 600_000), ("1h30m", 5_400_000), ("250ms", 250), ("2d", 172_800_000),
        ("1h0m5s", 3_605_000), ("45", 45_000), (" 3s ", 3000),
    ])
    func durations(_ text: String, _ expected: Int64) throws {
        #expect(try ScheduleDuration.parse(text, field: "after") == expected)
    }

    @Test("bad durations name the field", arguments: ["", "s", "10x", "5m1h", "1m1m", "0s", "-5s", "1.5h", "99999999999999d"])
    func badDurations(_ text: String) {
        #expect(throws: ScheduleFieldError.self) { try ScheduleDuration.parse(text, field: "every") }
        do {
            _ = try ScheduleDuration.parse(text, field: "every")
        } catch {
            #expect(error.field == "every")
        }
    }

    @Test("durations print back in the notation they are read in")
    func formatting() throws {
        for text in ["90s" : "1m30s", "1h30m": "1h30m", "250ms": "250ms", "1d": "1d"] {
            #expect(ScheduleDuration.format(try ScheduleDuration.parse(text.key, field: "after")) == text.value)
        }
    }

    @Test("exactly one schedule field; timezone only with cron; every at least 100ms")
    func requestRules() throws {
        let now = ms("2026-11-30T00:00:00Z")
        #expect(try ScheduleRequest.kind(at: nil, after: nil, every: nil, cron: nil, timezone: nil, now: now) == nil)
        #expect(try ScheduleRequest.kind(at: nil, after: "10m", every: nil, cron: nil, timezone: nil, now: now)
                == .after(ms: 600_000, due: now + 600_000))
        #expect(try ScheduleRequest.kind(at: "2026-11-30T09:00:00+01:00", after: nil, every: nil, cron: nil, timezone: nil, now: now)
                == .at(ms("2026-11-30T08:00:00Z")))
        let failures: [(String?, String?, String?, String?, String?, String)] = [
            ("2026-11-30T09:00:00Z", "10m", nil, nil, nil, "after"),
            (nil, nil, "10s", nil, "UTC", "timezone"),
            (nil, nil, "50ms", nil, nil, "every"),
            ("tomorrow", nil, nil, nil, nil, "at"),
            (nil, nil, nil, "* * *", nil, "cron"),
        ]
        for (at, after, every, cron, zone, field) in failures {
            do {
                _ = try ScheduleRequest.kind(at: at, after: after, every: every, cron: cron, timezone: zone, now: now)
                Issue.record("accepted \(field)")
            } catch {
                #expect(error.field == field)
            }
        }
    }

    @Test("every: the due times stay on the cadence from the creation time")
    func everyCadence() throws {
        let created = ms("2026-11-30T00:00:00Z")
        let schedule = try Schedule(id: "s", task: TaskSpec(topic: "t", message: "m"), kind: .every(ms: 30_000, anchor: created), now: created)
        #expect(schedule.nextDueMs == created + 30_000)
        // On time (acknowledged 5 ms late): the next slot.
        let onTime = try #require(schedule.afterFire(due: created + 30_000, now: created + 30_005))
        #expect(onTime.nextDueMs == created + 60_000)
        #expect(onTime.fires == 1 && onTime.lastFiredDueMs == created + 30_000)
    }

    @Test("catch-up: a recurring schedule down for ten periods fires once, then keeps its cadence")
    func recurringCatchUp() throws {
        let created = ms("2026-11-30T00:00:00Z")
        let schedule = try Schedule(id: "s", task: TaskSpec(topic: "t", message: "m"), kind: .every(ms: 1000, anchor: created), now: created)
        // Due at +1 s, but the daemon was down until +10.4 s: one fire, then +11 s.
        let caughtUp = try #require(schedule.afterFire(due: created + 1000, now: created + 10_400))
        #expect(caughtUp.nextDueMs == created + 11_000)
        #expect(caughtUp.fires == 1)
        let cron = try Schedule(id: "c", task: TaskSpec(topic: "t", message: "m"),
                                kind: .cron(CronSchedule("*/5 * * * *", timezone: nil)), now: created)
        #expect(cron.nextDueMs == created + 300_000)
        let late = try #require(cron.afterFire(due: created + 300_000, now: created + 3_700_000))
        #expect(late.nextDueMs == created + 3_900_000)
    }

    @Test("a one-shot fires once: after its fire there is no next state")
    func oneShot() throws {
        let created = ms("2026-11-30T00:00:00Z")
        let at = try Schedule(id: "a", task: TaskSpec(topic: "t", message: "m"), kind: .at(created - 5000), now: created)
        #expect(at.nextDueMs == created - 5000, "a time in the past is due at once")
        #expect(at.afterFire(due: at.nextDueMs, now: created) == nil)
        let after = try Schedule(id: "b", task: TaskSpec(topic: "t", message: "m"), kind: .after(ms: 90_000, due: created + 90_000), now: created)
        #expect(after.nextDueMs == created + 90_000)
        #expect(after.afterFire(due: after.nextDueMs, now: created + 200_000) == nil)
    }

    @Test("RFC 3339 formatting matches Foundation's for a spread of instants")
    func formatting3339() {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        for value in [Int64(0), 951_782_400_123, 1_795_996_800_007, 4_102_444_799_999, 1_700_000_000_050] {
            #expect(RFC3339.format(value) == formatter.string(from: Date(timeIntervalSince1970: TimeInterval(value) / 1000)))
        }
    }

    @Test("a schedule survives its JSON record unchanged")
    func recordRoundTrip() throws {
        let created = ms("2026-11-30T00:00:00Z")
        for kind in [ScheduleKind.at(created + 5), .after(ms: 90_000, due: created + 90_000), .every(ms: 1500, anchor: created),
                     .cron(try CronSchedule("0 9 * * MON-FRI", timezone: "Europe/Berlin"))] {
            var schedule = try Schedule(id: "id-\(kind.name)", task: TaskSpec(topic: "t", message: "m", key: "k", headers: ["h": "v"]),
                                        kind: kind, now: created)
            schedule.fires = 3
            schedule.lastFiredDueMs = created
            let message = ScheduleRecord.schedule(schedule).message(topic: "s", partitions: 4)
            #expect(message.partition == ScheduleRecord.partition(of: schedule.id, partitions: 4))
            let back = try ScheduleRecord(key: message.key, value: message.value, offset: 0)
            #expect(back == .schedule(schedule))
        }
        let tombstone = ScheduleRecord.removed(id: "x").message(topic: "s", partitions: 4)
        #expect(try ScheduleRecord(key: tombstone.key, value: tombstone.value, offset: 1) == .removed(id: "x"))
        #expect(throws: PoolRecordError.self) { try ScheduleRecord(key: Array("k".utf8), value: Array("{}".utf8), offset: 2) }
    }
}
