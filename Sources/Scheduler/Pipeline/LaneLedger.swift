/// Which offsets of one partition are unfinished, lane by lane, and so the
/// partition's position across its key lanes.
///
/// A partition's messages are split into lanes in offset order; each lane is
/// processed in order by whoever holds it, but lanes move at their own pace.
/// The partition may only be committed up to its lowest offset not yet
/// finished in any lane (`lowestUnfinished`; the emit watermark of each lane
/// is applied on top by `PartitionFeed`). The fetch position may run ahead of
/// that by at most `maxAhead` offsets: past it nothing more is split and the
/// fast lanes wait, so a slow lane cannot make the others buffer without bound.
///
/// A plain value: the rules are unit-tested without Kafka.
struct LaneLedger: Sendable, Equatable {
    /// Lanes of the partition.
    let lanes: Int
    /// How far the split position may run ahead of `lowestUnfinished`.
    let maxAhead: Int
    /// Offsets split into each lane and not finished yet, in order.
    private var pending: [[Int64]]
    /// Per lane: the first offset not yet read from pending (finished ones
    /// are dropped lazily from the front).
    private var heads: [Int]
    /// Per lane: every message of this lane below it has been split into it
    /// (-1 until the first split).
    private(set) var seen: [Int64]
    /// The offset the next message read from the partition should have (-1 until known).
    private(set) var splitNext: Int64 = -1
    /// After a rewind: the read position before it. Messages at or above it
    /// that still come out of the queue were fetched before the seek (stale):
    /// they are dropped until the first message below it (the re-read) arrives.
    private(set) var staleFrom: Int64?

    init(lanes: Int, maxAhead: Int) {
        self.lanes = max(1, lanes)
        self.maxAhead = max(1, maxAhead)
        pending = Array(repeating: [], count: self.lanes)
        heads = Array(repeating: 0, count: self.lanes)
        seen = Array(repeating: -1, count: self.lanes)
    }

    /// Whether a message read at `offset` is current; false for one fetched
    /// before a rewind's seek (drop it, and do not count it as read).
    mutating func isCurrent(offset: Int64) -> Bool {
        guard let stale = staleFrom else { return true }
        if offset >= stale { return false }
        staleFrom = nil
        return true
    }

    /// A message at `offset` read from the partition belongs to `lane`.
    /// False when that lane has already had it (the partition was read again
    /// from an earlier offset for another lane's failed emit): drop it.
    mutating func split(offset: Int64, lane: Int) -> Bool {
        if offset < seen[lane] { return false }
        pending[lane].append(offset)
        seen[lane] = offset + 1
        splitNext = max(splitNext, offset + 1)
        return true
    }

    /// Every message below `next` has been read and split: lanes that got
    /// none of them have nothing unfinished below it.
    mutating func splitThrough(next: Int64) {
        splitNext = max(splitNext, next)
        for lane in 0..<lanes where seen[lane] < next { seen[lane] = next }
    }

    /// The lane's messages up to and including `offset` are finished
    /// (processed, or dead-lettered).
    mutating func finished(lane: Int, through offset: Int64) {
        var head = heads[lane]
        let count = pending[lane].count
        while head < count, pending[lane][head] <= offset { head += 1 }
        if head == count {
            pending[lane].removeAll(keepingCapacity: true)
            head = 0
        } else if head > 1024 && head * 2 > count {
            pending[lane].removeFirst(head)
            head = 0
        }
        heads[lane] = head
    }

    /// The lane's lowest unfinished offset (-1 until known): its first
    /// pending message, else the next one it has not seen.
    func lowestUnfinished(lane: Int) -> Int64 {
        heads[lane] < pending[lane].count ? pending[lane][heads[lane]] : seen[lane]
    }

    /// The partition's lowest unfinished offset across lanes (-1 while any
    /// lane's is unknown).
    var lowestUnfinished: Int64 {
        var lowest = Int64.max
        for lane in 0..<lanes {
            let value = lowestUnfinished(lane: lane)
            if value < 0 { return -1 }
            lowest = min(lowest, value)
        }
        return lowest
    }

    /// Messages split into `lane` and not finished.
    func unfinishedCount(lane: Int) -> Int { pending[lane].count - heads[lane] }

    /// How far the split position is ahead of the lowest unfinished offset.
    var ahead: Int64 {
        let lowest = lowestUnfinished
        return splitNext < 0 || lowest < 0 ? 0 : splitNext - lowest
    }

    /// More may be read from the partition and split.
    var mayFetch: Bool { ahead < Int64(maxAhead) }

    /// Where the partition must be read again from for a rewind of a lane
    /// to `offset`: `offset`, or an earlier position another lane's rewind
    /// has already moved reading back to (not yet read again).
    func rewindTarget(_ offset: Int64) -> Int64 {
        splitNext >= 0 ? min(offset, splitNext) : offset
    }

    /// The lane's messages from `offset` on must be processed again (its
    /// emits failed there): forgets them; the partition is read again from
    /// `rewindTarget(offset)`. Other lanes keep what they have; what they
    /// already had is dropped when it is read again (`split` returns false).
    mutating func rewind(lane: Int, to offset: Int64) {
        let target = rewindTarget(offset)
        let kept = pending[lane][heads[lane]...].filter { $0 < offset }
        pending[lane] = Array(kept)
        heads[lane] = 0
        seen[lane] = offset
        // Several rewinds before the re-read: the highest position read is what is stale.
        if splitNext > target { staleFrom = max(staleFrom ?? splitNext, splitNext) }
        splitNext = target
    }

    /// Forgets everything (the partition left this process).
    mutating func reset() {
        self = LaneLedger(lanes: lanes, maxAhead: maxAhead)
    }
}
