import Synchronization

/// Where the holder of a partition's lease reads its messages: messages
/// already taken out of librdkafka but not processed (a previous holder's
/// unprocessed batch, or a message that reached the consumer queue), then
/// the partition's own librdkafka queue.
///
/// Only the current lease holder takes messages, so a handoff continues at
/// exactly the next offset, with nothing skipped and nothing repeated.
final class PartitionFeed: Sendable {
    let partition: TopicPartition
    let queue: PartitionQueue
    private let backlog = Mutex<[KafkaRawMessage]>([])
    private let next = Atomic<Int64>(-1)
    private let committed = Atomic<Int64>(-1)
    /// Emits of this partition's messages still in flight: commits wait for them.
    let emits: EmitTracker

    init(partition: TopicPartition, queue: PartitionQueue, budget: EmitBudget) {
        self.partition = partition
        self.queue = queue
        self.emits = EmitTracker(budget: budget)
    }

    /// The next batch, oldest first: the backlog if any, else up to a batch
    /// from the queue, waiting at most `timeoutMs`.
    func takeBatch(timeoutMs: Int) -> [KafkaRawMessage] {
        let held = backlog.withLock { items -> [KafkaRawMessage] in
            defer { items.removeAll() }
            return items
        }
        return held.isEmpty ? queue.consumeBatch(timeoutMs: timeoutMs) : held
    }

    /// Returns unprocessed messages to the front, for the next holder.
    func giveBack(_ messages: ArraySlice<KafkaRawMessage>) {
        guard !messages.isEmpty else { return }
        backlog.withLock { $0.insert(contentsOf: messages, at: 0) }
    }

    /// Adds a message that arrived on the consumer queue instead of the partition queue.
    func addStray(_ message: KafkaRawMessage) {
        backlog.withLock { $0.append(message) }
    }

    /// Frees the unprocessed messages (the partition was revoked: its next
    /// owner fetches them again from the committed offset).
    func discardBacklog() {
        let dropped = backlog.withLock { items -> [KafkaRawMessage] in
            defer { items.removeAll() }
            return items
        }
        dropped.forEach { $0.destroy() }
    }

    /// Messages ready to process right now.
    var readyCount: Int { backlog.withLock { $0.count } + queue.length }

    /// Offset of the next message to process (-1 until known).
    var nextOffset: Int64 {
        get { next.load(ordering: .relaxed) }
        set { next.store(newValue, ordering: .relaxed) }
    }

    /// The offset to commit: below it every message was processed and every
    /// task it emitted acknowledged (-1 until known).
    var committableOffset: Int64 {
        let next = nextOffset
        return next < 0 ? next : emits.committable(next: next)
    }

    /// Last offset committed (-1 until known).
    var committedOffset: Int64 {
        get { committed.load(ordering: .relaxed) }
        set { committed.store(newValue, ordering: .relaxed) }
    }
}
