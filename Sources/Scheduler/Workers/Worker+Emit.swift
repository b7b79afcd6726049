import Foundation
import Logging

/// How handing one message's emits to the producer went.
enum EmitResult {
    /// Enqueued (or already marked failed for the rewind); the worker goes on.
    case sent
    /// An emit is wrong in itself (topic name, size): a failed attempt.
    case invalid(String)
    /// The lease must end while the worker waited for room in the pipeline.
    case stopped(SliceEndReason)
}

extension Worker {
    /// Hands `messages`, emitted by the message at `offset`, to the producer
    /// without waiting for their acknowledgements. Waits (back pressure, not
    /// a failure) while the group has `max_inflight_emits` (or
    /// `max_inflight_emit_mb`) in flight or librdkafka's queue is full. A task librdkafka refuses for another
    /// reason counts as a failed delivery: the partition is read again from
    /// this message (see `recoverFromFailedEmit`).
    func emit(_ messages: [OutgoingMessage], offset: Int64, lease: Lease, feed: LaneFeed) -> EmitResult {
        guard !messages.isEmpty else { return .sent }
        let publisher = environment.publisher
        for message in messages {
            if let problem = publisher.problem(with: message) { return .invalid("emit to '\(message.topic)' failed: \(problem)") }
        }
        // More than the group may have in flight at once could only go
        // through an empty pipeline, past the bound: a failed attempt instead.
        guard messages.count <= environment.emitBudget.limit else {
            return .invalid("one message emitted \(messages.count) tasks, more than [[groups]] max_inflight_emits (\(environment.emitBudget.limit))")
        }
        let stop = lease.control.stop
        let bytes = messages.reduce(0) { $0 + $1.heldBytes }
        guard environment.emitBudget.acquire(messages.count, bytes: bytes, stop: stop) else {
            return .stopped(lease.control.stopReason ?? .shutdown)
        }
        feed.emits.processed(offset: offset, emits: messages.count, bytes: bytes)
        for message in messages {
            let sink = feed.emits.sink(topic: message.topic, metrics: environment.metrics)
            while true {
                guard let error = publisher.produce(message, sink: sink, token: offset) else { break }
                if case .backpressure = error, !stop.isRequested {
                    // librdkafka's queue drains as the broker acknowledges.
                    publisher.waitForRoom(stop: stop)
                    continue
                }
                // Never enqueued: recorded as a failed delivery, so this
                // message's offset is not committed and it is processed again.
                if case .kafka(let kafka) = error, kafka.isClosed {
                    // A worker left behind at shutdown whose call returned late.
                    environment.logger.warning("emit of offset \(offset) refused: \(kafka); the message stays uncommitted",
                                               metadata: logMetadata.merging([LogKey.topic: "\(lease.partition.topic)", LogKey.offset: "\(offset)"]) { $1 })
                }
                sink.delivered(token: offset, error: KafkaError(code: -1, message: "\(error)"))
                break
            }
        }
        return .sent
    }

    /// An emit of this partition failed: drops what was fetched ahead, waits
    /// until every emit in flight settled, then reads the partition again
    /// from the first message whose emits failed (after the retry backoff).
    /// Messages after it whose emits had succeeded are processed, and emit,
    /// again. Returns the reason if the lease must end first.
    func recoverFromFailedEmit(feed: LaneFeed, lease: Lease) -> SliceEndReason? {
        let stop = lease.control.stop
        // Bounded by the producer's message.timeout.ms: every emit settles by then.
        guard feed.emits.waitSettled(until: .now + .seconds(3600), stop: stop) else {
            return lease.control.stopReason ?? .shutdown
        }
        guard let failed = feed.emits.rewind() else { return nil }
        let group = environment.group
        environment.logger.warning(
            "emits of offset \(failed.offset) failed (attempt \(failed.rounds) of \(group.maxAttempts)): \(failed.error); reading \(lease.slot) again from there",
            metadata: logMetadata.merging([LogKey.topic: "\(lease.partition.topic)", LogKey.partition: "\(lease.partition.partition)",
                                           LogKey.lane: "\(lease.slot.lane)", LogKey.offset: "\(failed.offset)"]) { $1 })
        // With lanes, only this lane goes back: the others skip what they
        // already had when the partition is read again (PartitionFeed.rewind).
        // One seek per turn, the pauses outside it: other lanes of the
        // partition read meanwhile, and a revoke or shutdown ends the loop
        // within one seek's timeout.
        var tries = 0
        rewinding: while true {
            let outcome = feed.feed.rewind(lane: feed.lane, to: failed.offset, stop: stop) { target in
                try environment.consumer.seek(
                    PartitionOffset(topic: lease.partition.topic, partition: lease.partition.partition, offset: target),
                    timeoutMs: WorkerEnvironment.seekTimeoutMs)
            }
            switch outcome {
            case .done: break rewinding
            case .stopped: return lease.control.stopReason ?? .shutdown
            case .failed(let error):
                tries += 1
                environment.logger.error("seek after a failed emit failed (try \(tries)): \(error)", metadata: logMetadata)
                if let stop = pause(milliseconds: 200, lease: lease) { return stop }
            }
        }
        guard failed.rounds < group.maxAttempts else { return nil }  // dead-lettered when it comes again
        return pause(milliseconds: min(group.retryBackoffMs << min(failed.rounds - 1, 16), 30_000), lease: lease)
    }
}
