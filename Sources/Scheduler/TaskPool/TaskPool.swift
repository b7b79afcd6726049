/// The task pool as a plain value: the projection of the pool topic in
/// offset order, as this daemon's follower has read it so far, plus the
/// additions this daemon has in flight (they count against the capacity).
/// `PoolFollower` applies records to it; `TaskPoolStore` reads it and makes
/// every change by writing a record and waiting until the follower applied it.
///
/// Every entry has a stable `id` (its key in the pool topic). The position of
/// a task (its index in `GET /tasks`, its `Key <index>` in the default
/// generate.lua) is the offset order of the records that added it, so every
/// daemon that has read as far sees the same pool in the same order.
struct TaskPool: Sendable, Equatable {
    /// One task of the pool.
    struct Entry: Sendable, Equatable {
        /// Key of the entry's record in the pool topic.
        let id: String
        /// The task as posted (after `on_task`).
        let task: TaskSpec
    }

    /// Most entries (in the topic plus in flight here) the pool takes; records
    /// read from the topic are never refused (they were accepted once).
    let capacity: Int
    /// The entries in the offset order of the records that added them, with
    /// holes where entries were removed (compacted once they are the
    /// majority), so that applying a record costs O(1) however large the pool.
    private var slots: [Entry?] = []
    /// Where each entry's id sits in `slots`.
    private var slotOfID: [String: Int] = [:]
    /// The offset of the next record to apply: every record below it was applied.
    private(set) var nextOffset: Int64 = 0
    /// The topic was seeded (its marker record was read).
    private(set) var seeded = false
    /// The last tick record read.
    private(set) var lastTick: PoolTick?
    /// The follower has read as far as the topic reached when it started
    /// (or found the topic empty or missing).
    private(set) var caughtUp = false
    /// Where the topic ended when the follower started; caught up once applied there.
    private var catchUpEnd: Int64 = 0
    /// Additions of this daemon whose records are not applied yet.
    private(set) var inFlight = 0
    /// Records this daemon wrote, acknowledged by the broker at these
    /// offsets, not applied yet: each is applied as soon as every record
    /// before it was, without waiting for the follower's next fetch (on the
    /// embedded broker an idle fetch is answered only after
    /// `fetch.wait.max.ms`). The follower skips them when it reads them.
    private var acknowledged: [Int64: PoolRecord] = [:]

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// The entries, in pool order.
    var entries: [Entry] { slots.compactMap { $0 } }

    /// The tasks, in pool order (what `generate(tick, pool)` sees).
    var tasks: [TaskSpec] { slots.compactMap { $0?.task } }

    /// Number of tasks in the pool.
    var count: Int { slotOfID.count }

    /// Requests may be answered: the topic was read to its end and seeded.
    var isReady: Bool { caughtUp && seeded }

    /// The entry with `id`, if the pool has it.
    func entry(id: String) -> Entry? { slotOfID[id].flatMap { slots[$0] } }

    /// The entry at position `index` of the pool, if there is one.
    func entry(at index: Int) -> Entry? {
        guard index >= 0 && index < count else { return nil }
        var seen = 0
        for case let entry? in slots {
            if seen == index { return entry }
            seen += 1
        }
        return nil
    }

    /// Sets where the topic ended when the follower started reading it.
    mutating func startFollowing(end: Int64) {
        catchUpEnd = end
        if nextOffset >= end { caughtUp = true }
    }

    /// Applies the record at `offset` (records come in offset order): a task
    /// adds the entry at the end, or replaces it in place if its id is
    /// known; a tombstone removes it; the markers are remembered. Nil (a
    /// record that could not be read) only moves the offset on.
    mutating func apply(_ record: PoolRecord?, offset: Int64) {
        // Applied already, from this daemon's delivery report.
        guard offset >= nextOffset else { return }
        applyOne(record, offset: offset)
        applyAcknowledged()
    }

    /// A record this daemon wrote was acknowledged at `offset`: applied at
    /// once if it is the next record, else as soon as the records before it are.
    mutating func acknowledge(_ record: PoolRecord, offset: Int64) {
        guard offset >= nextOffset else { return }
        acknowledged[offset] = record
        applyAcknowledged()
    }

    private mutating func applyAcknowledged() {
        while let record = acknowledged.removeValue(forKey: nextOffset) { applyOne(record, offset: nextOffset) }
    }

    private mutating func applyOne(_ record: PoolRecord?, offset: Int64) {
        switch record {
        case .task(let id, let task)?:
            if let slot = slotOfID[id] {
                slots[slot] = Entry(id: id, task: task)
            } else {
                slotOfID[id] = slots.count
                slots.append(Entry(id: id, task: task))
            }
        case .removed(let id)?:
            if let slot = slotOfID.removeValue(forKey: id) {
                slots[slot] = nil
                if slots.count > 64 && slots.count > 2 * slotOfID.count { compact() }
            }
        case .created?:
            seeded = true
        case .tick(let tick)?:
            lastTick = tick
        case nil:
            break
        }
        reached(offset + 1)
    }

    /// The follower reached `offset` (the end of the partition, or the
    /// record before it was applied).
    mutating func reached(_ offset: Int64) {
        nextOffset = max(nextOffset, offset)
        if nextOffset >= catchUpEnd { caughtUp = true }
        if !acknowledged.isEmpty {
            acknowledged = acknowledged.filter { $0.key >= nextOffset }
            applyAcknowledged()
        }
    }

    /// The follower read the whole partition (end-of-partition event).
    mutating func reachedEnd(_ offset: Int64) {
        reached(offset)
        caughtUp = true
    }

    /// Drops the holes (amortised: at most once per as many removals as entries).
    private mutating func compact() {
        slots = slots.filter { $0 != nil }
        slotOfID = Dictionary(uniqueKeysWithValues: slots.enumerated().map { ($0.element!.id, $0.offset) })
    }

    /// Takes a slot for an addition of this daemon, or false when the pool
    /// (its tasks plus the additions in flight here) is full.
    mutating func reserve() -> Bool {
        guard count + inFlight < capacity else { return false }
        inFlight += 1
        return true
    }

    /// Gives a slot back: the addition was applied, or it failed.
    mutating func release() {
        inFlight = max(0, inFlight - 1)
    }
}
