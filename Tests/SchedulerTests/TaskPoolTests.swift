import Foundation
import Testing
@testable import Scheduler

/// A reservation that must be granted.
private func take(_ pool: inout TaskPool, sourceLocation: SourceLocation = #_sourceLocation) throws -> TaskPool.Reservation {
    let reservation = pool.reserve()
    return try #require(reservation, sourceLocation: sourceLocation)
}

@Suite("The task pool as a value: order, bound, removal, replay")
struct TaskPoolTests {
    let a = TaskSpec(topic: "A", message: "AA")
    let b = TaskSpec(topic: "B", message: "BB")
    let c = TaskSpec(topic: "C", message: "CC")

    @Test("entries keep the order of their reservations, whatever order the acknowledgements come in")
    func orderOfReservations() throws {
        var pool = TaskPool(capacity: 10)
        let first = try take(&pool)
        let second = try take(&pool)
        let third = try take(&pool)
        pool.commit(third, id: "c", task: c)
        pool.commit(first, id: "a", task: a)
        pool.commit(second, id: "b", task: b)
        #expect(pool.tasks == [a, b, c])
        #expect(pool.reserved == 0)
    }

    @Test("reservations count against the capacity; a released one frees its slot")
    func capacity() throws {
        var pool = TaskPool(capacity: 2)
        let first = try take(&pool)
        let second = try take(&pool)
        var refused = pool.reserve()
        #expect(refused == nil)
        pool.commit(first, id: "a", task: a)
        refused = pool.reserve()
        #expect(refused == nil)
        pool.release(second)
        let third = try take(&pool)
        pool.commit(third, id: "c", task: c)
        #expect(pool.tasks == [a, c])
        refused = pool.reserve()
        #expect(refused == nil)
    }

    @Test("remove(at:) takes the entry at that index; restore puts it back where it was")
    func removeAndRestore() throws {
        var pool = TaskPool(capacity: 10)
        for (id, task) in [("a", a), ("b", b), ("c", c)] { pool.commit(try take(&pool), id: id, task: task) }
        let taken = pool.remove(at: 1)
        let removed = try #require(taken)
        #expect(removed.task == b)
        #expect(pool.tasks == [a, c])
        let pastEnd = pool.remove(at: 2)
        let negative = pool.remove(at: -1)
        #expect(pastEnd == nil && negative == nil)
        pool.restore(removed)
        pool.restore(removed)
        #expect(pool.tasks == [a, b, c])
        let all = pool.removeAll()
        #expect(all.map(\.id) == ["a", "b", "c"] && pool.count == 0)
    }

    @Test("replay applies records in offset order: a new id appends, a known id is replaced in place, a tombstone removes")
    func replay() {
        var pool = TaskPool(capacity: 1)
        pool.replay(id: "a", task: a)
        pool.replay(id: "b", task: b)
        pool.replay(id: "c", task: c)
        pool.replay(id: "a", task: TaskSpec(topic: "A", message: "changed"))
        pool.replay(id: "b", task: nil)
        pool.replay(id: "unknown", task: nil)
        // Replay keeps what the topic holds even above the capacity.
        #expect(pool.tasks == [TaskSpec(topic: "A", message: "changed"), c])
        let refused = pool.reserve()
        #expect(refused == nil)
    }

    @Test("entries added after a replay come after the replayed ones")
    func addAfterReplay() throws {
        var pool = TaskPool(capacity: 10)
        pool.replay(id: "a", task: a)
        pool.replay(id: "b", task: b)
        pool.commit(try take(&pool), id: "c", task: c)
        #expect(pool.tasks == [a, b, c])
    }

    @Test("pool records: a task is keyed by its id on partition 0, a removal is a tombstone, and both read back")
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
        #expect(throws: PoolRecordError.self) { try PoolRecord(key: Array("x".utf8), value: Array("not json".utf8), offset: 3) }
        #expect(throws: PoolRecordError.self) { try PoolRecord(key: nil, value: message.value, offset: 4) }
    }
}
