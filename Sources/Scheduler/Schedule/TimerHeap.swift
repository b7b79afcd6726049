/// A binary min-heap of (due time, schedule id): the earliest due schedule
/// in O(1), insertion and removal of the earliest in O(log n).
///
/// Changing or removing a schedule does not search the heap: the caller
/// pushes the new due time and treats entries that no longer match its
/// schedule (`generation` differs) as stale when they surface. Stale entries
/// are dropped when popped, and the heap is rebuilt from the live ones when
/// they outnumber them, so it holds at most about twice the schedules.
struct TimerHeap: Sendable, Equatable {
    /// One timer.
    struct Entry: Sendable, Equatable {
        /// When it is due (ms since the epoch).
        let due: Int64
        /// The schedule it belongs to.
        let id: String
        /// The schedule's generation when the entry was pushed.
        let generation: UInt64

        fileprivate static func < (lhs: Entry, rhs: Entry) -> Bool {
            lhs.due != rhs.due ? lhs.due < rhs.due : lhs.id < rhs.id
        }
    }

    private(set) var entries: [Entry] = []

    /// Number of entries, stale ones included.
    var count: Int { entries.count }

    /// The earliest entry.
    var first: Entry? { entries.first }

    /// Adds a timer.
    mutating func push(_ entry: Entry) {
        entries.append(entry)
        siftUp(entries.count - 1)
    }

    /// Removes and returns the earliest entry.
    mutating func pop() -> Entry? {
        guard !entries.isEmpty else { return nil }
        entries.swapAt(0, entries.count - 1)
        let top = entries.removeLast()
        if !entries.isEmpty { siftDown(0) }
        return top
    }

    /// Keeps only the entries `isLive` accepts and restores the heap in O(n).
    mutating func rebuild(keeping isLive: (Entry) -> Bool) {
        entries.removeAll { !isLive($0) }
        for index in stride(from: entries.count / 2 - 1, through: 0, by: -1) { siftDown(index) }
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child] < entries[parent] else { return }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            guard left < entries.count else { return }
            let right = left + 1
            var smallest = left
            if right < entries.count && entries[right] < entries[left] { smallest = right }
            guard entries[smallest] < entries[parent] else { return }
            entries.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
