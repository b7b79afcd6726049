/// The producer's task pool as a plain value: which tasks it holds, in which
/// order, and the rules for adding and removing them. `TaskPoolStore` keeps
/// one behind a lock and makes every change durable in the pool topic.
///
/// Every entry has a stable `id` (its key in the pool topic) and an `order`
/// fixed when it was reserved, so the position of a task (its index in
/// `GET /tasks`, its `Key <index>` in the default generate.lua) is the same
/// however the acknowledgements of concurrent additions interleave, and the
/// same after a restart (the topic is replayed in offset order).
struct TaskPool: Sendable, Equatable {
    /// One task of the pool.
    struct Entry: Sendable, Equatable {
        /// Key of the entry's record in the pool topic.
        let id: String
        /// The task as posted (after `on_task`).
        let task: TaskSpec
        /// Position among all entries ever added; entries are kept sorted by it.
        let order: UInt64
    }

    /// A slot promised to an addition whose record is not acknowledged yet.
    struct Reservation: Sendable, Equatable {
        let order: UInt64
    }

    /// Most entries (committed plus reserved) the pool holds.
    let capacity: Int
    /// The entries, oldest first.
    private(set) var entries: [Entry] = []
    /// Additions in flight: they count against `capacity`.
    private(set) var reserved = 0
    private var nextOrder: UInt64 = 0

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// The tasks, in pool order (what `generate(tick, pool)` and `GET /tasks` see).
    var tasks: [TaskSpec] { entries.map(\.task) }

    /// Number of tasks in the pool.
    var count: Int { entries.count }

    /// Takes a slot for a new task, or nil when the pool is full.
    mutating func reserve() -> Reservation? {
        guard entries.count + reserved < capacity else { return nil }
        reserved += 1
        defer { nextOrder += 1 }
        return Reservation(order: nextOrder)
    }

    /// Turns a reservation into an entry (its record was acknowledged).
    mutating func commit(_ reservation: Reservation, id: String, task: TaskSpec) {
        reserved -= 1
        insert(Entry(id: id, task: task, order: reservation.order))
    }

    /// Gives a reservation back (its record or its publication failed).
    mutating func release(_ reservation: Reservation) {
        reserved -= 1
    }

    /// Removes and returns the entry at `index` (0-based), or nil if there is none.
    mutating func remove(at index: Int) -> Entry? {
        guard entries.indices.contains(index) else { return nil }
        return entries.remove(at: index)
    }

    /// Removes and returns every entry.
    mutating func removeAll() -> [Entry] {
        defer { entries.removeAll() }
        return entries
    }

    /// Puts a removed entry back at its old position (its tombstone failed).
    mutating func restore(_ entry: Entry) {
        guard !entries.contains(where: { $0.id == entry.id }) else { return }
        insert(entry)
    }

    /// Applies one record of the pool topic, read in offset order at start:
    /// a task adds the entry (or replaces it in place if the id is known),
    /// nil (a tombstone) removes it. Replay ignores `capacity`: what the
    /// topic holds was accepted once and is not dropped.
    mutating func replay(id: String, task: TaskSpec?) {
        let existing = entries.firstIndex { $0.id == id }
        switch (task, existing) {
        case (let task?, let index?):
            entries[index] = Entry(id: id, task: task, order: entries[index].order)
        case (let task?, nil):
            entries.append(Entry(id: id, task: task, order: nextOrder))
            nextOrder += 1
        case (nil, let index?):
            entries.remove(at: index)
        case (nil, nil):
            break
        }
    }

    private mutating func insert(_ entry: Entry) {
        // Usually the last position: acknowledgements mostly come in order.
        let index = entries.lastIndex { $0.order < entry.order }.map { $0 + 1 } ?? 0
        entries.insert(entry, at: index)
    }
}
