import Foundation
import Logging

extension Worker {
    /// Processes messages of `feed` until the slice boundary: `slice_ms`
    /// elapsed, the partition ran dry, the script yielded, or the coordinator
    /// asked to stop. The message in flight always finishes; messages taken
    /// but not processed go back to the feed for the next holder.
    func runLease(_ lease: Lease, feed: PartitionFeed) -> SliceReport {
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + .milliseconds(lease.sliceMs)
        var tally = SliceTally()
        var lastCommit = start
        var reason = SliceEndReason.slice
        script?.bindings.yieldRequested = false

        lease: while true {
            if let stop = lease.control.stopReason { reason = stop; break }
            let now = clock.now
            if now >= deadline { reason = .slice; break }
            let remainingMs = Int((deadline - now) / .milliseconds(1))
            let batch = feed.takeBatch(timeoutMs: max(1, min(WorkerEnvironment.drainWaitMs, remainingMs)))
            if batch.isEmpty {
                reason = clock.now >= deadline ? .slice : .drained
                break
            }
            for (position, message) in batch.enumerated() {
                if let stop = lease.control.stopReason {
                    feed.giveBack(batch[position...])
                    reason = stop
                    break lease
                }
                if position > 0 && clock.now >= deadline {
                    feed.giveBack(batch[position...])
                    reason = .slice
                    break lease
                }
                if let error = message.error {
                    environment.logger.warning("consumer error on \(lease.partition): \(error)", metadata: logMetadata)
                    message.destroy()
                    continue
                }
                let began = clock.now
                if tally.firstMessageAt == nil { tally.firstMessageAt = began }
                let outcome = handle(message, lease: lease)
                tally.busy += clock.now - began
                switch outcome {
                case .done(let failures, let deadLettered):
                    tally.messages += 1
                    tally.errors += failures
                    tally.deadLettered += deadLettered ? 1 : 0
                    feed.nextOffset = message.offset + 1
                    message.destroy()
                case .abandoned(let stop):
                    feed.giveBack(batch[position...])
                    reason = stop
                    break lease
                }
                if script?.bindings.yieldRequested == true {
                    feed.giveBack(batch[(position + 1)...])
                    reason = .yield
                    break lease
                }
            }
            if clock.now - lastCommit >= WorkerEnvironment.commitInterval {
                commitProgress(feed)
                lastCommit = clock.now
            }
        }
        let endedAt = clock.now
        commitProgress(feed)
        return SliceReport(
            lease: lease, reason: reason, messages: tally.messages, errors: tally.errors,
            deadLettered: tally.deadLettered, busy: tally.busy, endedAt: endedAt,
            firstMessageAt: tally.firstMessageAt, nextOffset: feed.nextOffset >= 0 ? feed.nextOffset : nil)
    }

    /// Commits the feed's position asynchronously if it moved (the seed's
    /// async commit; the final commit on revoke and shutdown is synchronous).
    func commitProgress(_ feed: PartitionFeed) {
        let next = feed.nextOffset
        guard next >= 0, next != feed.committedOffset else { return }
        do {
            try environment.consumer.commit([PartitionOffset(topic: feed.partition.topic, partition: feed.partition.partition, offset: next)], async: true)
            feed.committedOffset = next
        } catch {
            environment.logger.warning("commit of \(feed.partition) at \(next) failed: \(error)", metadata: logMetadata)
        }
    }
}

/// Running figures of one slice.
struct SliceTally {
    var messages = 0
    var errors = 0
    var deadLettered = 0
    var busy = Duration.zero
    var firstMessageAt: ContinuousClock.Instant?
}
