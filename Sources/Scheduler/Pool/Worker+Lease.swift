import Foundation
import Logging

extension Worker {
    /// Holds `feed` under `lease`: waits for the predecessor to let go, then
    /// processes messages. At each slice boundary (`slice_ms` elapsed, or the
    /// script yielded) it reports to the coordinator and goes on in overtime
    /// until the coordinator renews the lease, a successor takes over, or it
    /// is asked to stop. The lease ends at once when the partition runs dry.
    /// The message in flight always finishes; messages taken but not
    /// processed go back to the feed for the next holder.
    func runLease(_ lease: Lease, feed: LaneFeed, onReport: @Sendable (SliceReport) -> Void) {
        var handoffFrom: ContinuousClock.Instant?
        if let predecessor = lease.predecessor {
            awaitRelease(of: predecessor, lease: lease)
            if let released = predecessor.released, released.messagesWaiting { handoffFrom = released.at }
        }
        var handoffGap: Duration?
        refreshScript()
        let clock = ContinuousClock()
        var deadline = clock.now + .milliseconds(lease.sliceMs)
        var sliceStart = lease.grantedAt
        var tally = SliceTally()
        var announced = false
        var lastCommit = clock.now
        var reason = SliceEndReason.slice
        script?.bindings.yieldRequested = false

        /// The reason to let go now, or nil to go on. Announces the slice
        /// boundary once, and applies a renewal. `refresh`: false while the
        /// script runs (`drive`), whose state must not be switched then.
        func checkpoint(_ now: ContinuousClock.Instant, refresh: Bool = true) -> SliceEndReason? {
            if let stop = lease.control.stopReason { return stop }
            if refresh { refreshScript() }
            if announced {
                // Hand over only while the successor is actually running, so
                // the partition never waits for a thread to be scheduled.
                if lease.control.successorReady { return .slice }
                if let renewed = lease.control.takeRenewal() {
                    announced = false
                    sliceStart = now
                    deadline = sliceStart + .milliseconds(renewed)
                }
            }
            let yielded = script?.bindings.yieldRequested == true
            if !announced && (now >= deadline || yielded) {
                script?.bindings.yieldRequested = false
                announced = true
                onReport(report(lease, reason: yielded ? .yield : .slice, tally: tally, start: sliceStart, feed: feed, gap: handoffGap, final: false))
                handoffGap = nil
                tally = SliceTally()
                commitProgress(feed)
                lastCommit = clock.now
            }
            return nil
        }

        /// The handoff gap ends at the first message this lease handles.
        func noteFirstMessage(at began: ContinuousClock.Instant) {
            guard let from = handoffFrom else { return }
            handoffGap = began - from
            handoffFrom = nil
        }

        lease: while true {
            if let stop = checkpoint(clock.now) { reason = stop; break }
            if feed.emits.hasFailure {
                if let stop = recoverFromFailedEmit(feed: feed, lease: lease) { reason = stop; break }
                continue
            }
            // In overtime, wait briefly so the coordinator's answer is seen
            // soon; while fetched messages wait elsewhere, let go soon too.
            let drainWait = environment.fetchedElsewhere.isSet ? WorkerEnvironment.shortDrainWaitMs : WorkerEnvironment.drainWaitMs
            let wait = announced ? 1 : max(1, min(drainWait, Int((deadline - clock.now) / .milliseconds(1))))
            let batch = feed.takeBatch(timeoutMs: wait)
            if batch.isEmpty {
                if announced { continue }
                if clock.now < deadline { reason = .drained; break }
                continue
            }
            var pending = batch[...]  // what is left for process(), one message at a time
            if mayProcessAsBatch(batch, feed: feed) {
                let began = clock.now
                if let stop = checkpoint(began) {
                    feed.giveBack(batch[...])
                    reason = stop
                    break lease
                }
                noteFirstMessage(at: began)
                var ended = began
                let outcome = handleBatch(batch, lease: lease, feed: feed, calls: &tally.luaCalls, began: began, ended: &ended)
                tally.busy += ended - began
                switch outcome {
                case .done:
                    tally.messages += batch.count
                    feed.finished(through: batch[batch.count - 1].offset)
                    batch.forEach { $0.destroy() }
                    pending = []
                case .stopped(let stop):
                    feed.giveBack(batch[...])
                    reason = stop
                    break lease
                case .fallback:
                    break  // one message at a time below
                }
            }
            // process(msg) for the rest of the batch in one call into Lua;
            // what it could not finish goes on one message at a time below.
            var failedFirst: String?
            if !pending.isEmpty && mayDrive(pending, feed: feed) {
                let began = clock.now
                if let stop = checkpoint(began) {
                    feed.giveBack(pending)
                    reason = stop
                    break lease
                }
                noteFirstMessage(at: began)
                let run = drive(pending, lease: lease, feed: feed, checkpoint: { checkpoint($0, refresh: false) }) { count, last, calls, now in
                    tally.messages += count
                    tally.luaCalls.merge(calls)
                    feed.finished(through: last.offset)
                    if now - lastCommit >= WorkerEnvironment.commitInterval {
                        commitProgress(feed)
                        lastCommit = now
                    }
                }
                tally.busy += clock.now - began
                if let nanoseconds = run.failedCallNanoseconds { tally.luaCalls.add(.nanoseconds(nanoseconds)) }
                let rest = pending.dropFirst(run.done)
                pending.prefix(run.done).forEach { $0.destroy() }
                pending = rest
                switch run.next {
                case .finished, .oneByOne: break
                case .failed(let failure): failedFirst = failure
                case .stop(let stop), .abandoned(let stop):
                    feed.giveBack(rest)
                    reason = stop
                    break lease
                case .emitFailed:
                    rest.forEach { $0.destroy() }
                    continue lease
                }
            }
            for (position, message) in zip(pending.indices, pending) {
                let began = clock.now
                if let stop = checkpoint(began) {
                    feed.giveBack(batch[position...])
                    reason = stop
                    break lease
                }
                if feed.emits.hasFailure {
                    // Read again from the failed message: what was fetched ahead is dropped.
                    batch[position...].forEach { $0.destroy() }
                    continue lease
                }
                if let error = message.error {
                    environment.logger.warning("consumer error on \(lease.partition): \(error)", metadata: logMetadata)
                    message.destroy()
                    continue
                }
                noteFirstMessage(at: began)
                var ended = began
                let outcome = handle(message, lease: lease, feed: feed, calls: &tally.luaCalls, began: began, ended: &ended,
                                     failedFirst: position == pending.startIndex ? failedFirst : nil)
                tally.busy += ended - began
                switch outcome {
                case .done(let failures, let deadLettered):
                    tally.messages += 1
                    tally.errors += failures
                    tally.deadLettered += deadLettered ? 1 : 0
                    feed.finished(through: message.offset)
                    message.destroy()
                    // Within a long batch too: a rebalance is noticed (and
                    // commits held) at the first refused commit, and what
                    // the next owner redoes is bounded by this interval.
                    if ended - lastCommit >= WorkerEnvironment.commitInterval {
                        commitProgress(feed)
                        lastCommit = ended
                    }
                case .abandoned(let stop):
                    feed.giveBack(batch[position...])
                    reason = stop
                    break lease
                }
            }
            if clock.now - lastCommit >= WorkerEnvironment.commitInterval {
                commitProgress(feed)
                lastCommit = clock.now
            }
        }
        let final = report(lease, reason: reason, tally: tally, start: sliceStart, feed: feed, gap: handoffGap, overtime: announced, final: true)
        if reason == .slice && lease.control.takeoverRequested && lease.control.stopReason == nil {
            // Handoff: let go first (waking threads to commit or report could
            // get this thread preempted while the successor waits); the
            // successor commits the position within commit_interval.
            lease.control.release(at: final.endedAt, messagesWaiting: final.readyAtEnd)
            onReport(final)
        } else {
            commitProgress(feed)
            lease.control.release(at: final.endedAt, messagesWaiting: final.readyAtEnd)
            onReport(final)
        }
    }

    /// Waits until the previous holder has let go. It spins in short bursts
    /// and says so; the holder lets go only during a burst (between bursts it
    /// keeps processing), so the partition is never left waiting for this
    /// thread to be scheduled again.
    private func awaitRelease(of predecessor: LeaseControl, lease: Lease) {
        predecessor.requestTakeover()
        while !predecessor.isReleased {
            predecessor.setSuccessorSpinning(true)
            var spins = 0
            while !predecessor.isReleased && spins < 50_000 { spins += 1 }
            predecessor.setSuccessorSpinning(false)
            if predecessor.isReleased { break }
            // Also unblocks the holder when it is asked to stop for other reasons.
            Thread.sleep(forTimeInterval: 0.0005)
        }
    }

    private func report(
        _ lease: Lease, reason: SliceEndReason, tally: SliceTally, start: ContinuousClock.Instant,
        feed: LaneFeed, gap: Duration?, overtime: Bool = false, final: Bool
    ) -> SliceReport {
        SliceReport(
            lease: lease, reason: reason, messages: tally.messages, errors: tally.errors,
            deadLettered: tally.deadLettered, busy: tally.busy, luaCalls: tally.luaCalls, startedAt: start, endedAt: .now,
            nextOffset: feed.nextOffset >= 0 ? feed.nextOffset : nil,
            readyAtEnd: feed.readyCount > 0, handoffGap: gap, overtime: final && overtime, final: final)
    }

    /// Commits the feed's position asynchronously if it moved (the seed's
    /// async commit; the final commit on revoke and shutdown is synchronous):
    /// the first message not complete, so never past an emit in flight.
    /// With lanes, the position is the partition's across all its lanes.
    func commitProgress(_ lane: LaneFeed) {
        let partition = lane.partition
        // Held while the group rebalances (CommitGate): nothing is sent.
        guard environment.commits.isOpen else { return }
        do {
            try lane.feed.commitIfMoved { next in
                try environment.consumer.commit([PartitionOffset(topic: partition.topic, partition: partition.partition, offset: next)], async: true)
            }
        } catch {
            environment.logger.warning("commit of \(partition) failed: \(error)", metadata: logMetadata)
        }
    }
}

/// Running figures of one slice.
struct SliceTally {
    var messages = 0
    var errors = 0
    var deadLettered = 0
    var busy = Duration.zero
    var luaCalls = LuaCallTally()
}
