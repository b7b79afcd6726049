import Testing
@testable import Scheduler

@Suite("Schedule table: ownership, replay, fires, hand-over", .sharesMachine)
struct ScheduleTableTests {
    static let base = ms("2026-11-30T00:00:00Z")

    func every(_ id: String, _ intervalMs: Int64 = 1000) -> Schedule {
        // The try cannot fail for a positive interval.
        try! Schedule(id: id, task: TaskSpec(topic: "t", message: id), kind: .every(ms: intervalMs, anchor: Self.base), now: Self.base)
    }

    func at(_ id: String, _ due: Int64) -> Schedule {
        try! Schedule(id: id, task: TaskSpec(topic: "t", message: id), kind: .at(due), now: Self.base)
    }

    @Test("nothing fires while a partition is loading; once live, what fell due fires once")
    func loadingThenLive() {
        var table = ScheduleTable()
        table.assign([0])
        _ = table.apply(.schedule(at("a", Self.base + 100)), partition: 0)
        _ = table.apply(.schedule(every("e")), partition: 0)
        #expect(table.takeDue(now: Self.base + 5000).isEmpty)
        #expect(!table.isLive)
        table.markLive(0)
        #expect(table.isLive)
        let fires = table.takeDue(now: Self.base + 5000)
        #expect(fires.map(\.id).sorted() == ["a", "e"])
        #expect(table.takeDue(now: Self.base + 5000).isEmpty, "in flight: not taken twice")
        #expect(table.inFlight(0) == 2)
        for fire in fires {
            switch table.acknowledged(fire) {
            case .remove(let id, _): #expect(id == "a")
            case .write(let schedule, _): #expect(schedule.nextDueMs == Self.base + 6000)
            case .nothing: Issue.record("a fire was dropped")
            }
            table.settled(fire.partition)
        }
        #expect(table.inFlight(0) == 0)
        #expect(table.count == 1)
        #expect(table.nextDue() == Self.base + 6000)
    }

    @Test("a past-due one-shot stored on its owner fires once: its creation read back after the fire does not bring it back")
    func oneShotEchoAfterFire() {
        var table = ScheduleTable()
        table.assign([0])
        table.markLive(0)
        let created = at("a", Self.base - 60_000)
        // The API applies its acknowledged record at once; the timer takes it.
        _ = table.apply(.schedule(created), partition: 0)
        let fires = table.takeDue(now: Self.base)
        #expect(fires.map(\.id) == ["a"])
        #expect(table.acknowledged(fires[0]) == .remove(id: "a", partition: 0))
        // The creation record comes back from the broker only now.
        #expect(table.apply(.schedule(created), partition: 0).isEmpty)
        #expect(table.takeDue(now: Self.base + 1000).isEmpty, "the one-shot fired a second time")
        #expect(table.count == 0)
        // Then its tombstone; a state record landing after it is tombstoned again.
        _ = table.apply(.removed(id: "a"), partition: 0)
        #expect(table.apply(.schedule(created), partition: 0) == [.removed(id: "a")])
        #expect(table.takeDue(now: Self.base + 2000).isEmpty)
    }

    @Test("the counts per kind follow every change (new, changed kind, tombstone, fire, drop) without a pass over the table")
    func countsByKind() {
        var table = ScheduleTable()
        table.assign([0, 1])
        table.markLive(0)
        table.markLive(1)
        func check(_ expected: [String: Int], _ step: String) {
            let recounted = table.entries.values.reduce(into: [String: Int]()) { $0[$1.schedule.kind.name, default: 0] += 1 }
            #expect(table.countsByKind == expected, "\(step)")
            #expect(table.countsByKind == recounted, "\(step): kept counts differ from the table")
        }
        _ = table.apply(.schedule(at("a1", Self.base + 100)), partition: 0)
        _ = table.apply(.schedule(at("a2", Self.base + 200)), partition: 0)
        _ = table.apply(.schedule(every("e1")), partition: 0)
        _ = table.apply(.schedule(at("b", Self.base - 10)), partition: 1)
        check(["at": 3, "every": 1], "created")
        var changed = every("a2")
        changed.revision = 1
        _ = table.apply(.schedule(changed), partition: 0)
        check(["at": 2, "every": 2], "a2 changed from at to every")
        _ = table.apply(.removed(id: "a1"), partition: 0)
        check(["at": 1, "every": 2], "a1 cancelled")
        let fires = table.takeDue(now: Self.base)
        #expect(fires.map(\.id) == ["b"])
        #expect(table.acknowledged(fires[0]) == .remove(id: "b", partition: 1))
        check(["every": 2], "b fired")
        table.drop(0)
        check([:], "partition 0 dropped")
    }

    @Test("records of partitions not held are ignored; revoke stops fires and drop forgets")
    func ownership() {
        var table = ScheduleTable()
        table.assign([1])
        table.markLive(1)
        _ = table.apply(.schedule(every("mine")), partition: 1)
        _ = table.apply(.schedule(every("other")), partition: 2)
        #expect(table.schedules.map(\.id) == ["mine"])
        table.beginRevoke([1])
        #expect(table.takeDue(now: Self.base + 10_000).isEmpty)
        table.drop(1)
        #expect(table.count == 0)
    }

    @Test("an older state read back does not move the schedule back (no second fire)")
    func olderStateIgnored() {
        var table = ScheduleTable()
        table.assign([0])
        table.markLive(0)
        let created = every("e")
        _ = table.apply(.schedule(created), partition: 0)
        var fired: Schedule?
        for step in 1...2 {
            let fire = table.takeDue(now: Self.base + Int64(step) * 1000)
            #expect(fire.count == 1)
            if case .write(let schedule, _) = table.acknowledged(fire[0]) {
                fired = fired ?? schedule
            }
        }
        // The creation record and the first fire's state come back after the second fire.
        _ = table.apply(.schedule(created), partition: 0)
        _ = table.apply(.schedule(fired!), partition: 0)
        #expect(table.schedules.first?.fires == 2)
        #expect(table.nextDue() == Self.base + 3000)
        #expect(table.takeDue(now: Self.base + 2999).isEmpty)
    }

    @Test("a cancel (tombstone) removes the schedule; a fire in flight then writes nothing; a state after the tombstone is tombstoned again")
    func cancel() {
        var table = ScheduleTable()
        table.assign([0])
        table.markLive(0)
        _ = table.apply(.schedule(every("e")), partition: 0)
        let fires = table.takeDue(now: Self.base + 1000)
        _ = table.apply(.removed(id: "e"), partition: 0)
        #expect(table.acknowledged(fires[0]) == .nothing)
        #expect(table.inFlight(0) == 0)
        var raced = every("e")
        raced.fires = 1
        #expect(table.apply(.schedule(raced), partition: 0) == [.removed(id: "e")])
        #expect(table.count == 0)
    }

    @Test("a failed publication is retried later with its original due time; nothing advances")
    func failedFire() {
        var table = ScheduleTable()
        table.assign([0])
        table.markLive(0)
        _ = table.apply(.schedule(every("e")), partition: 0)
        let fire = table.takeDue(now: Self.base + 1000)[0]
        table.failed(fire, retryAt: Self.base + 2500)
        #expect(table.inFlight(0) == 0)
        #expect(table.takeDue(now: Self.base + 2000).isEmpty)
        let retried = table.takeDue(now: Self.base + 2500)
        #expect(retried.map(\.due) == [Self.base + 1000])
        #expect(table.schedules.first?.fires == 0)
    }

    @Test("a slow acknowledgement does not skip the next slot; a fire taken late moves past the whole missed period")
    func slowAcknowledgement() {
        var table = ScheduleTable()
        table.assign([0])
        table.markLive(0)
        _ = table.apply(.schedule(every("e")), partition: 0)
        // Taken on time at +1 s; acknowledged only after +2 s passed: +2 s still fires (late).
        let onTime = table.takeDue(now: Self.base + 1000)[0]
        guard case .write(let next, _) = table.acknowledged(onTime) else { Issue.record("no state"); return }
        #expect(next.nextDueMs == Self.base + 2000)
        // That fire is taken at +2.3 s (a period late is not reached): +3 s next.
        let late = table.takeDue(now: Self.base + 2300)[0]
        guard case .write(let after, _) = table.acknowledged(late) else { Issue.record("no state"); return }
        #expect(after.nextDueMs == Self.base + 3000)
        // Taken at +7.5 s (down meanwhile): once, then +8 s.
        let caughtUp = table.takeDue(now: Self.base + 7500)
        #expect(caughtUp.count == 1)
        guard case .write(let resumed, _) = table.acknowledged(caughtUp[0]) else { Issue.record("no state"); return }
        #expect(resumed.nextDueMs == Self.base + 8000)
    }

    @Test("reassigning a partition reads it again from scratch")
    func reassign() {
        var table = ScheduleTable()
        table.assign([0, 1])
        table.markLive(0)
        table.markLive(1)
        _ = table.apply(.schedule(every("a")), partition: 0)
        _ = table.apply(.schedule(every("b")), partition: 1)
        table.beginRevoke([0, 1])
        table.drop(0)
        table.drop(1)
        table.assign([1])
        #expect(table.count == 0)
        #expect(!table.isLive)
    }

    @Test("ten thousand schedules: each taken exactly once when due, in due order")
    func many() {
        var table = ScheduleTable()
        table.assign([0])
        table.markLive(0)
        for index in 0..<10_000 { _ = table.apply(.schedule(at("s\(index)", Self.base + Int64(index % 60_000) * 6)), partition: 0) }
        var taken: [Int64] = []
        var now = Self.base
        while taken.count < 10_000 && now < Self.base + 70_000 {
            now += 10
            let fires = table.takeDue(now: now)
            taken += fires.map(\.due)
            #expect(fires.allSatisfy { $0.due <= now })
            for fire in fires { _ = table.acknowledged(fire); table.settled(fire.partition) }
        }
        #expect(taken.count == 10_000)
        #expect(taken == taken.sorted())
        #expect(table.count == 0)
    }
}
