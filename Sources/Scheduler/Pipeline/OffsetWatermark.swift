/// Which messages of one partition are complete, for pipelined emits.
///
/// A message is complete when its `process()` succeeded and every task it
/// emitted was acknowledged by the broker. Messages are processed in offset
/// order, but acknowledgements arrive later and in any order, so the offset
/// that may be committed is the lowest one not complete yet: everything
/// below it is done, whatever happened above it.
///
/// Only messages that emitted something are tracked (a message without
/// emits is complete as soon as it is processed), so the no-emit path costs
/// nothing here. A plain value: the rules are unit-tested without Kafka.
struct OffsetWatermark: Sendable {
    /// A processed message still waiting for acknowledgements, or one whose
    /// emits failed.
    struct Entry: Sendable, Equatable {
        let offset: Int64
        var pending: Int
        /// The first delivery error of its emits, if any.
        var failure: String?
        /// What its emits hold (`EmitBudget`'s bytes), given back when the last settles.
        var bytes = 0
    }

    /// Processed messages with emits not all acknowledged (or failed), in
    /// offset order, from `head` on (the front is dropped lazily: acks
    /// arrive one by one and shifting the array each time would cost O(n)).
    private var storage: [Entry] = []
    private var head = 0
    /// Tracked messages, oldest first.
    var entries: ArraySlice<Entry> { storage[head...] }
    /// Failed emit rounds per offset: how often a message was processed
    /// again because its emits failed (kept across rewinds, for retries
    /// and the dead-letter decision).
    private(set) var emitFailures: [Int64: (rounds: Int, error: String)] = [:]

    /// Messages tracked (waiting or failed).
    var count: Int { storage.count - head }

    /// Emits not yet acknowledged nor failed.
    private(set) var pendingEmits = 0

    /// Records that `process()` succeeded for `offset` and emitted `emits`
    /// tasks, to be acknowledged through `settle`.
    mutating func processed(offset: Int64, emits: Int, bytes: Int = 0) {
        guard emits > 0 else { return }
        pendingEmits += emits
        if entries.last.map({ $0.offset < offset }) ?? true {
            storage.append(Entry(offset: offset, pending: emits, failure: nil, bytes: bytes))
        } else if let index = position(of: offset) {
            // The same message again (not expected).
            storage[index].pending += emits
            storage[index].bytes += bytes
        } else {
            // Out of order (not expected within a partition): keep the order anyway.
            let index = storage[head...].firstIndex { $0.offset > offset } ?? storage.count
            storage.insert(Entry(offset: offset, pending: emits, failure: nil, bytes: bytes), at: index)
        }
    }

    /// One emit of the message at `offset` was acknowledged (`error` nil) or
    /// failed. Complete messages at the front are forgotten. Returns the
    /// bytes the message held once this was its last emit to settle, else 0.
    @discardableResult
    mutating func settle(offset: Int64, error: String?) -> Int {
        guard let index = position(of: offset) else { return 0 }
        guard storage[index].pending > 0 else { return 0 }
        storage[index].pending -= 1
        pendingEmits -= 1
        if let error, storage[index].failure == nil { storage[index].failure = error }
        var freed = 0
        if storage[index].pending == 0 {
            freed = storage[index].bytes
            storage[index].bytes = 0
        }
        dropComplete()
        return freed
    }

    /// Forgets the complete messages at the front.
    private mutating func dropComplete() {
        while head < storage.count, storage[head].pending == 0, storage[head].failure == nil {
            if !emitFailures.isEmpty { emitFailures[storage[head].offset] = nil }
            head += 1
        }
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 1024 && head * 2 > storage.count {
            storage.removeFirst(head)
            head = 0
        }
    }

    /// The offset to commit: the first tracked message if any, else
    /// `processedUpTo` (the next offset to process).
    func committable(processedUpTo next: Int64) -> Int64 {
        entries.first.map { min($0.offset, next) } ?? next
    }

    /// The lowest offset whose emits failed, with the first error.
    var firstFailure: (offset: Int64, error: String)? {
        for entry in entries { if let failure = entry.failure { return (entry.offset, failure) } }
        return nil
    }

    /// Every emit has been acknowledged or has failed.
    var settled: Bool { pendingEmits == 0 }

    /// After a failed emit: the partition is read again from `offset` (the
    /// first failed message). Forgets every message from there on, counts
    /// one more failed round for `offset`, and returns that count.
    @discardableResult
    mutating func rewind(to offset: Int64) -> Int {
        let error = position(of: offset).flatMap { storage[$0].failure } ?? "emits failed"
        storage = Array(entries.filter { $0.offset < offset })
        head = 0
        pendingEmits = storage.reduce(0) { $0 + $1.pending }
        let rounds = (emitFailures[offset]?.rounds ?? 0) + 1
        emitFailures[offset] = (rounds, error)
        return rounds
    }

    /// Messages with failed emit rounds on record.
    var recordedFailures: Int { emitFailures.count }

    /// Failed emit rounds of the message at `offset` so far.
    func failedRounds(at offset: Int64) -> Int { emitFailures[offset]?.rounds ?? 0 }

    /// The error of the last failed emit round of the message at `offset`.
    func lastError(at offset: Int64) -> String? { emitFailures[offset]?.error }

    /// The message at `offset` was handled for good (dead-lettered): its
    /// failure count is no longer needed.
    mutating func forget(_ offset: Int64) { emitFailures[offset] = nil }

    /// Drops everything (the partition left this process).
    mutating func reset() {
        storage.removeAll()
        head = 0
        pendingEmits = 0
        emitFailures.removeAll()
    }

    private func position(of offset: Int64) -> Int? {
        var low = head
        var high = storage.count
        while low < high {
            let mid = (low + high) / 2
            if storage[mid].offset < offset { low = mid + 1 } else { high = mid }
        }
        return low < storage.count && storage[low].offset == offset ? low : nil
    }
}
