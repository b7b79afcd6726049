import Foundation
import Testing
@testable import Scheduler

@Suite("The task pool as a value: projection of the pool topic, bound, ticks, references", .sharesMachine)
struct TaskPoolTests {
    let a = TaskSpec(topic: "A", message: "AA")
    let b = TaskSpec(topic: "B", message: "BB")
    let c = TaskSpec(topic: "C", message: "CC")

    @Test("records apply in offset order: a new id appends, a known id is replaced in place, a tombstone removes, markers are kept")
    func projection() {
        var pool = TaskPool(capacity: 1)
        let records: [PoolRecord] = [
            .task(id: "a", a), .task(id: "b", b), .created, .task(id: "c", c),
            .task(id: "a", TaskSpec(topic: "A", message: "changed")), .removed(id: "b"), .removed(id: "unknown"),
            .tick(PoolTick(tick: 7, done: true, dueMs: 1000)),
        ]
        for (offset, record) in records.enumerated() { pool.apply(record, offset: Int64(offset)) }
        // The topic's content is kept even above the capacity.
        #expect(pool.tasks == [TaskSpec(topic: "A", message: "changed"), c])
        #expect(pool.entries.map(\.id) == ["a", "c"])
        #expect(pool.seeded && pool.lastTick == PoolTick(tick: 7, done: true, dueMs: 1000))
        #expect(pool.nextOffset == Int64(records.count))
        #expect(pool.entry(id: "c")?.task == c && pool.entry(id: "b") == nil)
        let refused = pool.reserve()
        #expect(!refused)
    }

    @Test("a large pool: removals leave holes that are compacted; order, index and id lookups stay right")
    func largePool() {
        var pool = TaskPool(capacity: 10)
        var expected: [String] = []
        var offset: Int64 = 0
        func apply(_ record: PoolRecord) {
            pool.apply(record, offset: offset)
            offset += 1
        }
        for i in 0..<500 {
            apply(.task(id: "t\(i)", TaskSpec(topic: "T", message: "\(i)")))
            expected.append("t\(i)")
        }
        for i in 0..<450 where i % 3 == 0 || i % 2 == 0 {
            apply(.removed(id: "t\(i)"))
            expected.removeAll { $0 == "t\(i)" }
        }
        apply(.task(id: "t451", TaskSpec(topic: "T", message: "changed")))
        apply(.task(id: "new", a))
        expected.append("new")
        #expect(pool.entries.map(\.id) == expected)
        #expect(pool.count == expected.count && pool.tasks.count == expected.count)
        for (index, id) in expected.enumerated() { #expect(pool.entry(at: index)?.id == id) }
        #expect(pool.entry(at: expected.count) == nil && pool.entry(at: -1) == nil)
        #expect(pool.entry(id: "t451")?.task.message == "changed" && pool.entry(id: "t0") == nil)
    }

    @Test("this daemon's acknowledged records apply as soon as every record before them did; the follower skips them later; another daemon's record in between holds them back")
    func ownRecordsEarly() {
        var pool = TaskPool(capacity: 10)
        pool.startFollowing(end: 1)
        pool.apply(.created, offset: 0)
        // Acknowledged at 2 and 1 (out of order): both apply once 1 is there.
        pool.acknowledge(.task(id: "b", b), offset: 2)
        #expect(pool.count == 0 && pool.nextOffset == 1)
        pool.acknowledge(.task(id: "a", a), offset: 1)
        #expect(pool.tasks == [a, b] && pool.nextOffset == 3)
        // Offset 3 is another daemon's: this daemon's record at 4 waits for it.
        pool.acknowledge(.removed(id: "a"), offset: 4)
        #expect(pool.tasks == [a, b])
        pool.apply(.task(id: "c", c), offset: 3)
        #expect(pool.tasks == [b, c] && pool.nextOffset == 5)
        // The follower reads this daemon's records later: nothing changes (a stays removed).
        pool.apply(.task(id: "a", a), offset: 1)
        pool.apply(.task(id: "b", b), offset: 2)
        #expect(pool.tasks == [b, c] && pool.nextOffset == 5)
        pool.apply(.task(id: "c", c), offset: 3)
        pool.apply(.removed(id: "a"), offset: 4)
        #expect(pool.tasks == [b, c] && pool.nextOffset == 5)
        // An acknowledgement for an offset already applied is ignored.
        pool.acknowledge(.task(id: "x", a), offset: 2)
        #expect(pool.tasks == [b, c])
        // Passed by the end of the partition (e.g. after a gap): dropped, not applied.
        pool.acknowledge(.task(id: "late", a), offset: 7)
        pool.reachedEnd(8)
        pool.apply(.task(id: "d", a), offset: 8)
        #expect(pool.tasks == [b, c, a] && pool.entry(id: "late") == nil && pool.nextOffset == 9)
    }

    @Test("two daemons applying the same records in the same order show the same pool, whatever the order of their writes")
    func sameOrderEverywhere() {
        let log: [PoolRecord] = [.task(id: "x", a), .task(id: "y", b), .removed(id: "x"), .task(id: "z", c), .created]
        var first = TaskPool(capacity: 10)
        var second = TaskPool(capacity: 10)
        for (offset, record) in log.enumerated() {
            first.apply(record, offset: Int64(offset))
            second.apply(record, offset: Int64(offset))
        }
        #expect(first == second && first.tasks == [b, c])
    }

    @Test("caught up once applied to the end the topic had at start, or at the end-of-partition event; ready once also seeded")
    func catchUp() {
        var pool = TaskPool(capacity: 10)
        pool.startFollowing(end: 3)
        pool.apply(.task(id: "a", a), offset: 0)
        pool.apply(.created, offset: 1)
        #expect(!pool.caughtUp && !pool.isReady)
        pool.apply(nil, offset: 2)  // a record that could not be read still counts
        #expect(pool.caughtUp && pool.isReady && pool.nextOffset == 3)

        var empty = TaskPool(capacity: 10)
        empty.startFollowing(end: 0)
        #expect(empty.caughtUp && !empty.isReady)  // read, but not seeded yet

        var gaps = TaskPool(capacity: 10)
        gaps.startFollowing(end: 10)
        gaps.apply(.created, offset: 4)
        #expect(!gaps.caughtUp)
        gaps.reachedEnd(10)
        #expect(gaps.caughtUp && gaps.nextOffset == 10)
    }

    @Test("additions in flight count against the capacity with the shared pool; a released one frees its slot")
    func capacity() {
        var pool = TaskPool(capacity: 2)
        pool.apply(.task(id: "a", a), offset: 0)
        var granted = [pool.reserve(), pool.reserve()]
        #expect(granted == [true, false])
        pool.release()
        granted = [pool.reserve()]
        #expect(granted == [true])
        // Another daemon's addition lands meanwhile: the pool is over-full, nothing more is taken.
        pool.apply(.task(id: "b", b), offset: 1)
        pool.release()
        granted = [pool.reserve()]
        #expect(granted == [false])
        pool.release()  // never below zero
        #expect(pool.inFlight == 0)
    }

    @Test("pool records: a task is keyed by its id on partition 0, a removal is a tombstone, markers and ticks read back")
    func records() throws {
        let task = TaskSpec(topic: "E", message: "EE", key: "k", headers: ["h": "v"])
        let message = PoolRecord.task(id: "id-1", task).message(topic: "pool")
        #expect(message.partition == 0 && message.key == Array("id-1".utf8) && !message.isTombstone)
        #expect(try PoolRecord(key: message.key, value: message.value, offset: 0) == .task(id: "id-1", task))
        let tombstone = PoolRecord.removed(id: "id-1").message(topic: "pool")
        #expect(tombstone.isTombstone && tombstone.partition == 0)
        #expect(try PoolRecord(key: tombstone.key, value: [], offset: 1) == .removed(id: "id-1"))
        let marker = PoolRecord.created.message(topic: "pool")
        #expect(try PoolRecord(key: marker.key, value: marker.value, offset: 2) == .created)
        let tick = PoolRecord.tick(PoolTick(tick: 12, done: false, dueMs: 1_700_000_000_000)).message(topic: "pool")
        #expect(tick.value.utf8String == #"{"done":false,"due_ms":1700000000000,"tick":12}"#)
        #expect(try PoolRecord(key: tick.key, value: tick.value, offset: 3) == .tick(PoolTick(tick: 12, done: false, dueMs: 1_700_000_000_000)))
        #expect(throws: PoolRecordError.self) { try PoolRecord(key: Array("x".utf8), value: Array("not json".utf8), offset: 3) }
        #expect(throws: PoolRecordError.self) { try PoolRecord(key: nil, value: message.value, offset: 4) }
        #expect(throws: PoolRecordError.self) { try PoolRecord(key: tick.key, value: Array("{}".utf8), offset: 5) }
    }

    @Test("the next publisher's tick", arguments: [
        // (last tick record, now) -> (tick, due, redone); interval 1000, the daemon started at 0.
        (nil, 500, 1, 1000, false),                                          // fresh pool: one interval after start
        (nil, 4000, 1, 4000, false),                                         // elected late: at once
        (PoolTick(tick: 5, done: true, dueMs: 10_000), 10_300, 6, 11_000, false),  // handover in time: on schedule
        (PoolTick(tick: 5, done: true, dueMs: 10_000), 14_000, 6, 14_000, false),  // after a session timeout: at once, next number
        (PoolTick(tick: 5, done: false, dueMs: 10_000), 14_000, 5, 14_000, true),  // died mid-tick: redo it
    ] as [(PoolTick?, Int64, Int, Int64, Bool)])
    func takeover(last: PoolTick?, nowMs: Int64, tick: Int, dueMs: Int64, redone: Bool) {
        #expect(TickPlan.takeover(after: last, intervalMs: 1000, startedMs: 0, nowMs: nowMs) == TickPlan(tick: tick, dueMs: dueMs, redone: redone))
    }

    @Test("ticks of one publisher count 1, 2, 3 an interval apart; a tick that ran long is followed at once, not made up")
    func following() {
        let first = TickPlan.takeover(after: nil, intervalMs: 100, startedMs: 0, nowMs: 0)
        let second = first.next(intervalMs: 100, nowMs: 105)
        let third = second.next(intervalMs: 100, nowMs: 450)
        #expect([first.tick, second.tick, third.tick] == [1, 2, 3] as [Int])
        #expect([first.dueMs, second.dueMs, third.dueMs] == [100, 200, 450] as [Int64])
    }

    @Test("the publisher role: ticks only in the term it was planned in; a revoke is seen by the next tick; outcomes counted")
    func role() {
        var role = PublisherRole()
        var began = [role.beginTick(term: 0)]
        #expect(began == [false])
        role.elect(end: 42)
        #expect(role.isPublisher && role.term == 1 && role.electedAtEnd == 42)
        began = [role.beginTick(term: 1)]
        #expect(began == [true] && role.ticking)
        role.endTick(.published)
        role.resign()
        role.elect(end: 50)
        // Re-elected meanwhile: the plan of term 1 is stale.
        began = [role.beginTick(term: 1), role.beginTick(term: 2)]
        #expect(began == [false, true])
        role.endTick(.skipped)
        role.redo()
        #expect(!role.ticking && role.published == 1 && role.skipped == 1 && role.doubled == 1)
    }

    @Test("DELETE /tasks/<text> names a pool index (digits) or id (UUID, initial-<n>); anything else is refused", arguments: [
        ("0", PoolTaskReference.index(0)), ("12", .index(12)),
        ("3F2504E0-4F89-11D3-9A0C-0305E82C3301", .id("3f2504e0-4f89-11d3-9a0c-0305e82c3301")),
        ("initial-3", .id("initial-3")),
        ("first", nil), ("-1", nil), ("", nil), ("initial-", nil), ("initial-x", nil), ("initial-+1", nil),
        ("99999999999999999999999", nil),
    ] as [(String, PoolTaskReference?)])
    func references(text: String, expected: PoolTaskReference?) {
        #expect(PoolTaskReference(text) == expected)
    }
}
