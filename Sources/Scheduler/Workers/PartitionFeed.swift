import Foundation
import Synchronization

/// Where the holders of a partition's lanes read their messages.
///
/// The partition's librdkafka queue is read by whichever lane holder needs
/// messages (one at a time: the one holding `readTurn`); every message read is split at
/// once into its key lane (`KeyLanes`) in offset order, so each lane's backlog
/// holds its messages in the partition's order. A lane's holder takes only its
/// own lane's messages, and only the current holder of a lane takes them, so a
/// handoff continues at exactly the lane's next message, with nothing skipped
/// and nothing repeated. With one lane (the default) this is today's single
/// feed of the partition.
///
/// The partition's commit position is the lowest offset unfinished in any
/// lane (`LaneLedger`), held back further by each lane's emits in flight.
final class PartitionFeed: Sendable {
    let partition: TopicPartition
    let queue: PartitionQueue
    let keyLanes: KeyLanes
    /// The lanes' emits in flight: commits wait for them; a failed one makes
    /// only its lane read again.
    let laneEmits: [EmitTracker]
    private let split: Mutex<SplitState>
    /// Taken while reading the partition queue (and while seeking it), so
    /// messages are split in the order they were read. A turn, not a mutex:
    /// no lock is held across the blocking librdkafka calls, and a lane
    /// holder waiting for it gives up at its deadline or when told to stop.
    private let readTurn = ReadTurn()
    /// The last position sent. Relaxed atomic: written only under
    /// `committing` (below), read without it by the lane holders' "moved?"
    /// check and by views, where a stale value costs one commit more or less.
    private let committed = Atomic<Int64>(-1)
    /// Serialises commits of the partition from several lane holders, so a
    /// lower position is never sent after a higher one.
    private let committing = Mutex<Void>(())
    /// Counts the changes that may let a lane waiting at `lane_max_ahead`
    /// go on (`finished`, `rewind`, messages split): such a lane sleeps on it.
    private let fetchReopened = WatchedValue<UInt64>(0)

    /// The lanes' backlogs and the ledger, changed together.
    /// Only touched inside `split`'s lock (the messages are handed over
    /// whole, see KafkaRawMessage).
    struct SplitState: Sendable {
        var ledger: LaneLedger
        /// Owned: messages come in from a `KafkaMessageBatch` (`release`)
        /// and leave in one (`adopting`) or are destroyed here.
        var backlogs: [[KafkaMessageView]]
        /// Lane holders asleep until the ledger lets them read again.
        var waitingToFetch = 0
    }

    init(partition: TopicPartition, queue: PartitionQueue, budget: EmitBudget, lanes: Int = 1, maxAhead: Int = 10_000) {
        self.partition = partition
        self.queue = queue
        self.keyLanes = KeyLanes(count: lanes)
        self.laneEmits = (0..<keyLanes.count).map { _ in EmitTracker(budget: budget) }
        self.split = Mutex(SplitState(ledger: LaneLedger(lanes: keyLanes.count, maxAhead: maxAhead),
                                      backlogs: Array(repeating: [], count: keyLanes.count)))
    }

    /// Lanes of the partition.
    var lanes: Int { keyLanes.count }

    /// The view of one lane its lease holder works with.
    func lane(_ lane: Int) -> LaneFeed { LaneFeed(feed: self, lane: lane) }

    /// The next messages of `lane`, oldest first: its backlog if any, else
    /// what reading the partition brings for it, waiting at most `timeoutMs`.
    /// While the partition has run `lane_max_ahead` past its lowest
    /// unfinished offset nothing is read: the lane waits (and comes back
    /// empty) until the slow lane catches up.
    func takeBatch(lane: Int, timeoutMs: Int) -> KafkaMessageBatch {
        let deadline = ContinuousClock.now + .milliseconds(timeoutMs)
        while true {
            if let mine = takeBacklog(lane) { return mine }
            if split.withLock({ $0.ledger.mayFetch }) {
                // Another lane's holder reads (or seeks) until our deadline:
                // come back empty, the lease loop checks its stop flag.
                guard readTurn.take(until: deadline, stop: nil) else { return takeBacklog(lane) ?? KafkaMessageBatch() }
                let remaining = max(0, Int((deadline - .now) / .milliseconds(1)))
                let fetched = { () -> KafkaMessageBatch? in
                    defer { readTurn.give() }
                    // Another lane's holder may have read ours meanwhile.
                    if let mine = takeBacklog(lane) { return mine }
                    guard split.withLock({ $0.ledger.mayFetch }) else { return nil }
                    distribute(queue.consumeBatch(timeoutMs: lanes == 1 ? timeoutMs : min(remaining, 5)))
                    return takeBacklog(lane)
                }()
                if let fetched { return fetched }
                if lanes == 1 { return KafkaMessageBatch() }
            } else {
                waitForFetch(until: deadline)
            }
            if ContinuousClock.now >= deadline { return KafkaMessageBatch() }
        }
    }

    /// Sleeps while the partition has run `lane_max_ahead` past its lowest
    /// unfinished offset, until a lane's progress lets it read (or `deadline`).
    private func waitForFetch(until deadline: ContinuousClock.Instant) {
        let seen = split.withLock { state -> UInt64? in
            guard !state.ledger.mayFetch else { return nil }
            state.waitingToFetch += 1
            return fetchReopened.read { $0 }
        }
        guard let seen else { return }
        _ = fetchReopened.waitBlocking(until: Date(timeIntervalSinceNow: max(0, (deadline - .now).seconds))) { $0 != seen }
        split.withLock { $0.waitingToFetch -= 1 }
    }

    /// Wakes the lanes waiting to read if the ledger now lets them (under `split`'s lock).
    private func reopenFetch(_ state: SplitState) {
        guard state.waitingToFetch > 0, state.ledger.mayFetch else { return }
        fetchReopened.update { $0 &+= 1 }
    }

    private func takeBacklog(_ lane: Int) -> KafkaMessageBatch? {
        let mine = split.withLock { state -> [KafkaMessageView] in
            defer { state.backlogs[lane].removeAll() }
            return state.backlogs[lane]
        }
        return mine.isEmpty ? nil : KafkaMessageBatch(adopting: mine)
    }

    /// Splits messages read from the partition into their lanes.
    private func distribute(_ batch: consuming KafkaMessageBatch) {
        guard !batch.isEmpty else { return }
        let messages = batch.release()
        var dropped: [KafkaMessageView] = []
        split.withLock { state in
            var last: Int64 = -1
            for message in messages {
                // A consumer error carries no position: lane 0 logs it.
                guard message.error == nil else { state.backlogs[0].append(message); continue }
                guard state.ledger.isCurrent(offset: message.offset) else {
                    dropped.append(message)  // fetched before a rewind's seek: read again in order
                    continue
                }
                let lane = keyLanes.lane(forKey: message.key)
                if state.ledger.split(offset: message.offset, lane: lane) {
                    state.backlogs[lane].append(message)
                } else {
                    dropped.append(message)  // the lane had it before a rewind of another lane
                }
                last = max(last, message.offset)
            }
            if last >= 0 { state.ledger.splitThrough(next: last + 1) }
            // A waiting lane may have got messages (strays) or room to read.
            if state.waitingToFetch > 0 { fetchReopened.update { $0 &+= 1 } }
        }
        KafkaMessageBatch(adopting: dropped).destroy()
    }

    /// Returns `lane`'s unprocessed messages to the front, for its next holder.
    func giveBack(lane: Int, _ batch: consuming KafkaMessageBatch) {
        guard !batch.isEmpty else { return }
        let messages = batch.release()
        split.withLock { $0.backlogs[lane].insert(contentsOf: messages, at: 0) }
    }

    /// Adds a message that arrived on the consumer queue instead of the partition queue.
    func addStray(_ batch: consuming KafkaMessageBatch) {
        distribute(batch)
    }

    /// Frees every lane's unprocessed messages (the partition was revoked:
    /// its next owner fetches them again from the committed offset).
    func discardBacklog() {
        let dropped = split.withLock { state -> [KafkaMessageView] in
            defer { state.backlogs = state.backlogs.map { _ in [] } }
            return state.backlogs.flatMap { $0 }
        }
        KafkaMessageBatch(adopting: dropped).destroy()
    }

    /// `lane`'s messages up to `offset` are done (processed or dead-lettered).
    func finished(lane: Int, through offset: Int64) {
        split.withLock { state in
            state.ledger.finished(lane: lane, through: offset)
            reopenFetch(state)
        }
    }

    /// How one attempt at `rewind` went.
    enum RewindOutcome: Equatable {
        /// The read position moved back; the lane's backlog is dropped.
        case done
        /// `seek` failed (nothing changed): try again after a pause.
        case failed(String)
        /// Told to stop while waiting for another lane's read or seek.
        case stopped
    }

    /// After a failed emit: `lane` is read again from `offset`. Drops the
    /// lane's backlog and, while no other lane reads, moves the partition's
    /// read position back with one `seek` attempt (to `offset`, or earlier if
    /// another lane's rewind is not read again yet). Other lanes keep their
    /// messages and skip them when read again. The caller retries a failed
    /// attempt, pausing outside the turn, so other lanes read meanwhile and
    /// see their own stop flags.
    func rewind(lane: Int, to offset: Int64, stop: StopSignal?, seek: (Int64) throws -> Void) -> RewindOutcome {
        guard readTurn.take(until: .now + .seconds(86_400 * 365), stop: stop) else { return .stopped }
        defer { readTurn.give() }
        do {
            // Not past where another lane's rewind already moved reading back to.
            try seek(split.withLock { $0.ledger.rewindTarget(offset) })
        } catch {
            return .failed("\(error)")
        }
        let dropped = split.withLock { state -> [KafkaMessageView] in
            defer { state.backlogs[lane].removeAll() }
            state.ledger.rewind(lane: lane, to: offset)
            reopenFetch(state)
            return state.backlogs[lane]
        }
        KafkaMessageBatch(adopting: dropped).destroy()
        return .done
    }

    /// Messages of `lane` ready to process now (its backlog), plus what
    /// waits in the partition queue (not yet split).
    func readyCount(lane: Int) -> Int { split.withLock { $0.backlogs[lane].count } + queue.length }

    /// Messages ready to process right now, over all lanes.
    var readyCount: Int { split.withLock { $0.backlogs.reduce(0) { $0 + $1.count } } + queue.length }

    /// Messages split into `lane` and not finished (its lag in `GET /groups`).
    func unfinished(lane: Int) -> Int { split.withLock { $0.ledger.unfinishedCount(lane: lane) } }

    /// `lane`'s lowest unfinished offset (-1 until known).
    func lowestUnfinished(lane: Int) -> Int64 { split.withLock { $0.ledger.lowestUnfinished(lane: lane) } }

    /// Whether `lane` has work for a new holder: messages in its backlog, a
    /// failed emit to redo, or unread messages while the fetch bound allows
    /// reading (`unread`: on the broker past the read position).
    func hasWork(lane: Int, unread: Bool) -> Bool {
        if laneEmits[lane].hasFailure { return true }
        let (backlog, mayFetch) = split.withLock { ($0.backlogs[lane].count, $0.ledger.mayFetch) }
        return backlog > 0 || (mayFetch && (unread || queue.length > 0))
    }

    /// The offset the next message read from the partition should have (-1 until known).
    var readPosition: Int64 { split.withLock { $0.ledger.splitNext } }

    /// The lowest offset not finished in any lane (-1 until known).
    var nextOffset: Int64 { split.withLock { $0.ledger.lowestUnfinished } }

    /// The offset to commit: below it every message was processed in its
    /// lane and every task it emitted acknowledged (-1 until known).
    var committableOffset: Int64 {
        let lowest = split.withLock { state in (0..<lanes).map { state.ledger.lowestUnfinished(lane: $0) } }
        var position = Int64.max
        for (lane, next) in lowest.enumerated() {
            if next < 0 { return -1 }
            position = min(position, laneEmits[lane].committable(next: next))
        }
        return position
    }

    /// Last offset committed (-1 until known).
    var committedOffset: Int64 {
        get { committed.load(ordering: .relaxed) }
        set { committed.store(newValue, ordering: .relaxed) }
    }

    /// Sends the commit position through `send` if it moved (one sender at a time).
    func commitIfMoved(_ send: (Int64) throws -> Void) rethrows {
        try committing.withLock { _ in
            let next = committableOffset
            guard next >= 0, next != committedOffset else { return }
            try send(next)
            committedOffset = next
        }
    }

    /// Every lane's emits were acknowledged or failed before `deadline`.
    func waitEmitsSettled(until deadline: ContinuousClock.Instant) -> Bool {
        laneEmits.allSatisfy { $0.waitSettled(until: deadline) }
    }

    /// Emits in flight over every lane.
    var pendingEmits: Int { laneEmits.reduce(0) { $0 + $1.pendingEmits } }

    /// Some lane's emit failed.
    var hasEmitFailure: Bool { laneEmits.contains { $0.hasFailure } }
}

/// One lane of a partition, as its lease holder sees it.
struct LaneFeed: Sendable {
    let feed: PartitionFeed
    let lane: Int

    var partition: TopicPartition { feed.partition }
    /// The lane's emits in flight.
    var emits: EmitTracker { feed.laneEmits[lane] }
    func takeBatch(timeoutMs: Int) -> KafkaMessageBatch { feed.takeBatch(lane: lane, timeoutMs: timeoutMs) }
    func giveBack(_ batch: consuming KafkaMessageBatch) { feed.giveBack(lane: lane, batch) }
    func finished(through offset: Int64) { feed.finished(lane: lane, through: offset) }
    var readyCount: Int { feed.readyCount(lane: lane) }
    /// The lane's next message to process (-1 until known).
    var nextOffset: Int64 { feed.lowestUnfinished(lane: lane) }
}

/// One lane holder at a time reads (or seeks) a partition: a turn taken and
/// given back, never a lock held while the holder waits in librdkafka, so
/// others wait with a deadline and a stop flag.
final class ReadTurn: Sendable {
    private let taken = WatchedValue(false)

    /// Takes the turn; false if `deadline` passed or `stop` was requested
    /// first. Woken when the turn is given back, or by the stop.
    func take(until deadline: ContinuousClock.Instant, stop: StopSignal?) -> Bool {
        while true {
            if taken.update({ taken in defer { taken = true }; return !taken }) { return true }
            let left = deadline - .now
            if stop?.isRequested == true || left <= .zero { return false }
            // Foundation's timed wait traps on dates far off: "never" is untimed.
            let until = left > .seconds(86_400) ? Date.distantFuture : Date(timeIntervalSinceNow: left.seconds)
            _ = taken.waitBlocking(until: until, or: stop) { !$0 }
        }
    }

    /// Gives the turn back and wakes the waiters.
    func give() {
        taken.update { $0 = false }
    }
}
