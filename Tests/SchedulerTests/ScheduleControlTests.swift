import Foundation
import Testing
@testable import Scheduler

@Suite("Schedule control as data: revisions, pause, trigger, catch-up policies, old records", .sharesMachine)
struct ScheduleControlTests {
    static let base = ms("2026-11-30T00:00:00Z")

    func every(_ id: String, _ intervalMs: Int64 = 1000, policy: CatchUpPolicy? = nil) -> Schedule {
        var schedule = try! Schedule(id: id, task: TaskSpec(topic: "t", message: id), kind: .every(ms: intervalMs, anchor: Self.base), now: Self.base)
        schedule.catchup = policy
        return schedule
    }

    func liveTable() -> ScheduleTable {
        var table = ScheduleTable()
        table.assign([0])
        table.markLive(0)
        return table
    }

    /// Takes what is due at `now` and acknowledges it; returns the fires.
    func fire(_ table: inout ScheduleTable, at now: Int64) -> [ScheduleTable.Fire] {
        let fires = table.takeDue(now: now)
        for fire in fires {
            _ = table.acknowledged(fire, at: now)
            table.settled(fire.partition)
        }
        return fires
    }

    @Test("a record written by the previous version (no revision, source, policy fields) loads as before, and a schedule using none of them is written as before")
    func oldRecordsLoad() throws {
        let old = #"{"createdMs":1795996800000,"fires":3,"id":"s-1","kind":{"every":{"anchor":1795996800000,"ms":1000}},"lastFiredDueMs":1795996803000,"nextDueMs":1795996804000,"task":{"message":"m","topic":"t"}}"#
        let record = try ScheduleRecord(key: Array("s-1".utf8), value: Array(old.utf8), offset: 0)
        guard case .schedule(let schedule) = record else { Issue.record("not a schedule"); return }
        #expect(schedule.fires == 3 && schedule.revision == nil && schedule.policy == .once && !schedule.isPaused)
        #expect(schedule.source == nil && schedule.effectiveDueMs == 1_795_996_804_000)
        #expect(String(decoding: record.message(topic: "x", partitions: 4).value, as: UTF8.self) == old)
    }

    @Test("a higher revision is the newer definition; the owner keeps the fires it made since (and writes the merge)")
    func updateKeepsState() {
        var table = liveTable()
        let created = every("e")
        _ = table.apply(.schedule(created), partition: 0)
        #expect(fire(&table, at: Self.base + 1000).count == 1)
        // An API writer changed the message from the creation it knew (fires 0).
        var changed = created
        changed.task = TaskSpec(topic: "t", message: "new")
        changed.revision = 5
        let again = table.apply(.schedule(changed), partition: 0)
        let held = table.entries["e"]?.schedule
        #expect(held?.task.message == "new" && held?.fires == 1 && held?.nextDueMs == Self.base + 2000)
        #expect(again == [.schedule(held!)], "the merge is written back")
        // The owner's state under the old revision, read back after: kept, not a step back.
        var oldState = created
        oldState.fires = 1
        oldState.nextDueMs = Self.base + 2000
        oldState.lastFiredDueMs = Self.base + 1000
        #expect(table.apply(.schedule(oldState), partition: 0).isEmpty)
        #expect(table.entries["e"]?.schedule.task.message == "new")
        // A state of a lower revision with more fires (written before the owner read the change): its state, our definition.
        oldState.fires = 2
        oldState.nextDueMs = Self.base + 3000
        #expect(table.apply(.schedule(oldState), partition: 0).count == 1)
        #expect(table.entries["e"]?.schedule.task.message == "new" && table.entries["e"]?.schedule.fires == 2)
        #expect(table.nextDue() == Self.base + 3000)
    }

    @Test("deleted and made again under the same id: the new one lives; our own tombstone read back later does not remove it")
    func recreateSameID() {
        var table = liveTable()
        var first = every("n")
        first.revision = 10
        _ = table.apply(.schedule(first), partition: 0)
        table.removeHere("n", partition: 0)
        var second = every("n", 2000)
        second.revision = 20
        _ = table.apply(.schedule(second), partition: 0)
        // The creation, then our tombstone, then the new record come back.
        #expect(table.apply(.schedule(first), partition: 0).isEmpty)
        _ = table.apply(.removed(id: "n"), partition: 0)
        #expect(table.entries["n"]?.schedule.revision == 20)
        _ = table.apply(.schedule(second), partition: 0)
        #expect(table.entries["n"]?.schedule.revision == 20)
        // On a new owner reading it all from the start: the same end.
        var replay = ScheduleTable()
        replay.assign([0])
        for record: ScheduleRecord in [.schedule(first), .removed(id: "n"), .schedule(second)] { _ = replay.apply(record, partition: 0) }
        #expect(replay.entries["n"]?.schedule.revision == 20)
        // A stale state of the first after its tombstone is tombstoned again.
        var stale = ScheduleTable()
        stale.assign([0])
        var fired = first
        fired.fires = 1
        for record: ScheduleRecord in [.schedule(first), .removed(id: "n")] { _ = stale.apply(record, partition: 0) }
        #expect(stale.apply(.schedule(fired), partition: 0) == [.removed(id: "n")])
    }

    @Test("paused: nothing fires; a trigger fires once now without moving the cadence; resumed: fires again")
    func pauseTrigger() {
        var table = liveTable()
        var schedule = every("p")
        _ = table.apply(.schedule(schedule), partition: 0)
        schedule.paused = true
        schedule.revision = 1
        _ = table.apply(.schedule(schedule), partition: 0)
        #expect(table.takeDue(now: Self.base + 5000).isEmpty, "a paused schedule fired")
        schedule.triggers = 1
        schedule.triggerAtMs = Self.base + 5200
        schedule.revision = 2
        _ = table.apply(.schedule(schedule), partition: 0)
        let triggered = fire(&table, at: Self.base + 5300)
        #expect(triggered.map(\.trigger) == [true] && triggered.first?.due == Self.base + 5200)
        let after = table.entries["p"]!.schedule
        #expect(after.fires == 1 && after.triggered == 1 && !after.triggerPending && after.nextDueMs == Self.base + 1000)
        #expect(table.takeDue(now: Self.base + 9000).isEmpty, "fired twice for one trigger")
        var resumed = after
        resumed.paused = nil
        resumed.nextDueMs = Self.base + 10_000
        resumed.revision = 3
        _ = table.apply(.schedule(resumed), partition: 0)
        #expect(fire(&table, at: Self.base + 10_000).map(\.due) == [Self.base + 10_000])
        // A stale writer's record (triggers 1, triggered unknown) does not fire the trigger again.
        var stale = resumed
        stale.triggered = nil
        stale.revision = 4
        _ = table.apply(.schedule(stale), partition: 0)
        #expect(table.takeDue(now: Self.base + 10_500).isEmpty)
    }

    @Test("catch-up after 5.5 missed seconds of an every-1s schedule", arguments: [
        // policy, dues fired (offsets in s), misses counted, next due
        (CatchUpPolicy.once, [1], 5, 7),
        (CatchUpPolicy.skip, [Int](), 6, 7),
        (CatchUpPolicy.all, [1, 2, 3, 4, 5, 6], 0, 7),
    ])
    func catchUp(_ policy: CatchUpPolicy, _ fired: [Int], _ misses: Int, _ next: Int) {
        var table = liveTable()
        _ = table.apply(.schedule(every("c", policy: policy)), partition: 0)
        var dues: [Int64] = []
        var skipped = 0
        // Down until +6.5 s, then the timer runs every 10 ms until +6.9 s.
        for now in stride(from: Self.base + 6500, to: Self.base + 6900, by: 10) {
            for fire in fire(&table, at: now) {
                if fire.skip { skipped += 1 } else { dues.append(fire.due) }
            }
        }
        #expect(dues == fired.map { Self.base + Int64($0) * 1000 })
        #expect(table.entries["c"]?.schedule.misses ?? 0 == Int64(misses))
        #expect(table.entries["c"]?.schedule.nextDueMs == Self.base + Int64(next) * 1000)
        #expect(skipped == (policy == .skip ? 1 : 0))
    }

    @Test("all: at most CatchUp.maxAll fires for a gap (the first missed slot, then the latest); the rest are counted")
    func allBounded() {
        var table = liveTable()
        _ = table.apply(.schedule(every("a", policy: .all)), partition: 0)
        var dues: [Int64] = []
        for _ in 0..<(CatchUp.maxAll + 10) {
            let fires = fire(&table, at: Self.base + 500_500)
            if fires.isEmpty { break }
            dues += fires.map(\.due)
        }
        // 500 slots missed (+1 s to +500 s).
        #expect(dues.count == CatchUp.maxAll)
        #expect(dues.first == Self.base + 1000)
        #expect(dues.dropFirst().first == Self.base + Int64(500 - CatchUp.maxAll + 2) * 1000)
        #expect(dues.last == Self.base + 500_000)
        #expect(table.entries["a"]?.schedule.misses == Int64(500 - CatchUp.maxAll))
        #expect(table.entries["a"]?.schedule.nextDueMs == Self.base + 501_000)
    }

    @Test("skip drops a late one-shot (more than a minute late) and keeps a slightly late one")
    func skipOneShot() {
        var table = liveTable()
        var late = try! Schedule(id: "late", task: TaskSpec(topic: "t", message: "m"), kind: .at(Self.base), now: Self.base - 1)
        late.catchup = .skip
        var onTime = late
        onTime = try! Schedule(id: "ontime", task: TaskSpec(topic: "t", message: "m"), kind: .at(Self.base + 59_000), now: Self.base - 1)
        onTime.catchup = .skip
        _ = table.apply(.schedule(late), partition: 0)
        _ = table.apply(.schedule(onTime), partition: 0)
        let fires = table.takeDue(now: Self.base + 61_000)
        #expect(Dictionary(uniqueKeysWithValues: fires.map { ($0.id, $0.skip) }) == ["late": true, "ontime": false])
    }

    @Test("generate.lua's schedules table: read by name, errors name the entry and field; the plan creates, updates, removes only script schedules")
    func scriptTable() throws {
        let now = Self.base
        let value: LuaValue = .table([
            "nightly": .table(["topic": "r", "message": "n", "cron": "0 2 * * *", "timezone": "Europe/Berlin"]),
            "beat": .table(["topic": "h", "message": "b", "every": .integer(30), "catchup": "skip"]),
            "past": .table(["topic": "h", "message": "p", "at": "2020-01-01T00:00:00Z"]),
        ])
        let declared = try ScriptSchedules.read(value, now: now)
        #expect(declared["beat"]?.kind == .every(ms: 30_000, anchor: 0) && declared["beat"]?.policy.catchup == .skip)
        #expect(declared["nightly"]?.source == .script)
        for (bad, expected) in [
            (LuaValue.table(["x": .table(["topic": "t", "message": "m"])]), #"schedules["x"]': give one of"#),
            (.table(["x": .table(["topic": "t", "message": "m", "every": "1s", "evry": "2s"])]), #"schedules["x"].evry': is not a schedule field"#),
            (.table(["x": .table(["topic": "t", "message": "m", "cron": "61 * * * *"])]), "minute"),
            (.table(["a b": .table(["topic": "t", "message": "m", "every": "1s"])]), "only letters"),
            (.table([.integer(1): .table(["topic": "t", "message": "m", "every": "1s"])]), "keys must be names"),
            (.string("x"), "must be a table"),
        ] {
            var text = "no error"
            do { _ = try ScriptSchedules.read(bad, now: now) } catch { text = error.description }
            #expect(text.contains(expected), "\(text)")
        }
        // Existing: nightly as declared, beat changed, old (script) gone from the script, api (API) untouched.
        func existing(_ id: String, _ definition: ScheduleStore.Definition) -> Schedule {
            var schedule = try! Schedule(id: id, task: definition.task, kind: definition.kind, now: now - 5000)
            schedule.policyFields = definition.policy
            schedule.source = definition.source == .api ? nil : definition.source
            return schedule
        }
        var changedBeat = declared["beat"]!
        changedBeat.task.message = "old"
        let old = ScheduleStore.Definition(task: TaskSpec(topic: "t", message: "o"), kind: .every(ms: 1000, anchor: now), source: .script)
        let api = ScheduleStore.Definition(task: TaskSpec(topic: "t", message: "a"), kind: .every(ms: 1000, anchor: now))
        // The nightly one was stored earlier: the same timing by its fields, whatever its creation time.
        let plan = ScriptSchedules.plan(declared: declared, existing: [existing("nightly", declared["nightly"]!), existing("beat", changedBeat),
                                                                       existing("old", old), existing("api", api)], now: now)
        #expect(plan.put == ["beat"], "a past 'at' missing is not made again; nightly is unchanged")
        #expect(plan.remove == ["old"])
        #expect(ScriptSchedules.plan(declared: declared, existing: [], now: now).put == ["beat", "nightly"])
    }

    @Test("jitter: each slot is taken at a fixed offset within the bound (the same on every computation), spread over it; x-schedule-due stays the slot")
    func jitter() {
        var table = liveTable()
        var schedule = every("j")
        schedule.jitterMs = 300
        _ = table.apply(.schedule(schedule), partition: 0)
        var offsets: [Int64] = []
        for slot in 1...60 {
            let due = Self.base + Int64(slot) * 1000
            let offset = schedule.jitterOffset(due)
            #expect(offset == schedule.jitterOffset(due) && (0...300).contains(offset))
            #expect(table.takeDue(now: due + offset - 1).isEmpty, "slot \(slot) taken before its jitter")
            let fires = fire(&table, at: due + offset)
            #expect(fires.map(\.due) == [due] && fires.first?.jitterMs == offset)
            offsets.append(offset)
        }
        #expect(Set(offsets).count > 20 && offsets.max()! > 200 && offsets.min()! < 100, "offsets not spread: \(offsets)")
    }

    @Test("window and limit: nothing before start, done after end or after limit regular fires (triggers not counted)")
    func windowAndLimit() {
        var table = liveTable()
        var windowed = every("w")
        windowed.startMs = Self.base + 10_500
        windowed.endMs = Self.base + 13_000
        windowed.moveIntoWindow()
        #expect(windowed.nextDueMs == Self.base + 11_000)
        var limited = every("l")
        limited.limit = 3
        limited.triggers = 1
        limited.triggerAtMs = Self.base + 500
        _ = table.apply(.schedule(windowed), partition: 0)
        _ = table.apply(.schedule(limited), partition: 0)
        var fired: [String: [Int64]] = [:]
        for now in stride(from: Self.base, through: Self.base + 20_000, by: 100) {
            for fire in fire(&table, at: now) { fired[fire.id, default: []].append(fire.due - Self.base) }
        }
        #expect(fired["w"] == [11_000, 12_000, 13_000])
        #expect(fired["l"] == [500, 1000, 2000, 3000], "a trigger, then three regular fires")
        #expect(table.count == 0, "both done and removed")
    }

    @Test("a one-shot moved to another time while its fire is in flight is not removed by that fire: the new time still fires")
    func oneShotMovedInFlight() {
        var table = liveTable()
        let original = try! Schedule(id: "o", task: TaskSpec(topic: "t", message: "m"), kind: .at(Self.base), now: Self.base - 1000)
        _ = table.apply(.schedule(original), partition: 0)
        let fires = table.takeDue(now: Self.base)
        var moved = original
        moved.kind = .at(Self.base + 5000)
        moved.nextDueMs = Self.base + 5000
        moved.revision = 7
        _ = table.apply(.schedule(moved), partition: 0)
        guard case .write(let state, _) = table.acknowledged(fires[0], at: Self.base) else { Issue.record("removed by the old fire"); return }
        table.settled(0)
        #expect(state.nextDueMs == Self.base + 5000 && state.fires == 1)
        #expect(table.takeDue(now: Self.base + 4999).isEmpty)
        #expect(fire(&table, at: Self.base + 5000).map(\.due) == [Self.base + 5000])
        #expect(table.count == 0, "done after its new time fired")
    }

    /// A state for the merge table: revision, fires, message.
    static func state(_ revision: Int64, fires: Int64, message: String = "m") -> Schedule {
        var schedule = try! Schedule(id: "x", task: TaskSpec(topic: "t", message: message), kind: .every(ms: 1000, anchor: base), now: base)
        schedule.revision = revision
        schedule.fires = fires
        schedule.nextDueMs = base + (fires + 1) * 1000
        schedule.lastFiredDueMs = fires > 0 ? base + fires * 1000 : nil
        return schedule
    }

    @Test("ScheduleMerge, rule by rule", arguments: [
        // held, incoming, expected: "ignore", "replace" or "merged:<fires>:<message>"
        (state(1, fires: 3), state(1, fires: 3), "ignore"),
        (state(1, fires: 3), state(1, fires: 2), "ignore"),
        (state(1, fires: 3), state(1, fires: 4), "replace"),
        (state(1, fires: 3), state(2, fires: 3, message: "new"), "replace"),
        (state(1, fires: 3), state(2, fires: 1, message: "new"), "merged:3:new"),
        (state(2, fires: 3, message: "new"), state(1, fires: 4), "merged:4:new"),
        (state(2, fires: 3, message: "new"), state(1, fires: 3), "ignore"),
        (state(0, fires: 0), state(5, fires: 0, message: "new"), "replace"),
    ])
    func mergeRules(_ held: Schedule, _ incoming: Schedule, _ expected: String) {
        let result = ScheduleMerge.apply(held: held, incoming: incoming)
        switch result {
        case .ignore: #expect(expected == "ignore")
        case .replace(let schedule): #expect(expected == "replace" && schedule == incoming)
        case .merged(let schedule):
            #expect(expected == "merged:\(schedule.fires):\(schedule.task.message)", "\(schedule)")
            // Never behind the fires either side made, never a slot already fired.
            #expect(schedule.nextDueMs > (schedule.lastFiredDueMs ?? .min))
        }
    }
}
