import Foundation
import Logging

/// One lease being run on its worker's thread (`Worker.runLease`), its
/// state in fields: take a batch, process it, checkpoint between messages
/// (report the slice boundary, renew, hand off, stop), and on the way out
/// give back what was not processed. Every batch leaves through `take`,
/// the one place that disposes of its messages.
struct LeaseRun {
    /// How a batch ended; `take` disposes of the messages left accordingly.
    enum BatchEnd {
        /// Every message was handled: take the next batch.
        case handled
        /// An emit failed: what was fetched ahead is dropped and read again.
        case reread
        /// The lease ends: what is left goes back to the feed for the next holder.
        case stop(SliceEndReason)
    }

    let worker: Worker
    let lease: Lease
    let feed: LaneFeed
    let onReport: @Sendable (SliceReport) -> Void
    let clock = ContinuousClock()
    /// When the predecessor let go with messages waiting; cleared at this
    /// lease's first message, which ends the handoff gap.
    var handoffFrom: ContinuousClock.Instant?
    var handoffGap: Duration?
    var sliceStart: ContinuousClock.Instant
    var deadline: ContinuousClock.Instant
    var tally = SliceTally()
    /// The slice boundary was reported: in overtime until renewed, handed off or stopped.
    var announced = false
    var lastCommit: ContinuousClock.Instant

    init(worker: Worker, lease: Lease, feed: LaneFeed, onReport: @escaping @Sendable (SliceReport) -> Void,
         handoffFrom: ContinuousClock.Instant?) {
        self.worker = worker
        self.lease = lease
        self.feed = feed
        self.onReport = onReport
        self.handoffFrom = handoffFrom
        deadline = clock.now + .milliseconds(lease.sliceMs)
        sliceStart = lease.grantedAt
        lastCommit = clock.now
    }

    /// Takes batches and processes them until a lease rule says to let go.
    mutating func work() -> SliceEndReason {
        while true {
            if let stop = checkpoint(clock.now) { return stop }
            if feed.emits.hasFailure {
                if let stop = worker.recoverFromFailedEmit(feed: feed, lease: lease) { return stop }
                continue
            }
            let batch = feed.takeBatch(timeoutMs: waitMs())
            if batch.isEmpty {
                // Dry before the boundary: the lease ends at once.
                if !announced && clock.now < deadline { return .drained }
                continue
            }
            switch take(batch) {
            case .handled: commitIfDue(at: clock.now)
            case .reread: continue
            case .stop(let reason): return reason
            }
        }
    }

    /// How long to wait for a batch. In overtime briefly, so the
    /// coordinator's answer is seen soon; while fetched messages wait
    /// elsewhere, shortly too, so the lease lets go soon.
    private func waitMs() -> Int {
        let drainWait = worker.environment.fetchedElsewhere.isSet ? WorkerEnvironment.shortDrainWaitMs : WorkerEnvironment.drainWaitMs
        return announced ? 1 : max(1, min(drainWait, Int((deadline - clock.now) / .milliseconds(1))))
    }

    /// Processes `batch` and disposes of the messages it has left: given
    /// back when the lease ends, else destroyed (none are left once handled).
    private mutating func take(_ batch: consuming KafkaMessageBatch) -> BatchEnd {
        let end = process(&batch)
        if case .stop = end { feed.giveBack(batch) } else { batch.destroy() }
        return end
    }

    /// The ways through a batch, cheapest first: one `process_columns` or
    /// `process_batch` call; `process(msg)` driven from C; then one message
    /// at a time for what is left. Finished messages leave the front.
    private mutating func process(_ batch: inout KafkaMessageBatch) -> BatchEnd {
        if worker.mayProcessAsBatch(batch.remaining, feed: feed), let end = processWhole(&batch) { return end }
        var failedFirst: String?
        if !batch.isEmpty && worker.mayDrive(batch.remaining, feed: feed), let end = drive(&batch, failedFirst: &failedFirst) {
            return end
        }
        return processEach(&batch, failedFirst: failedFirst)
    }

    /// The whole batch in one call; nil: it goes on message by message.
    private mutating func processWhole(_ batch: inout KafkaMessageBatch) -> BatchEnd? {
        let began = clock.now
        if let stop = checkpoint(began) { return .stop(stop) }
        noteFirstMessage(at: began)
        var ended = began
        let outcome = worker.handleBatch(batch.remaining, lease: lease, feed: feed, calls: &tally.luaCalls, began: began, ended: &ended)
        tally.busy += ended - began
        switch outcome {
        case .done:
            tally.messages += batch.count
            if let last = batch.last { feed.finished(through: last.offset) }
            batch.removeFirst(batch.count)
            return .handled
        case .stopped(let stop): return .stop(stop)
        case .fallback: return nil
        }
    }

    /// `process(msg)` for the batch in one call into Lua; nil: what it
    /// could not finish goes on one message at a time (`failedFirst`: the
    /// first one's failed attempt).
    private mutating func drive(_ batch: inout KafkaMessageBatch, failedFirst: inout String?) -> BatchEnd? {
        let began = clock.now
        if let stop = checkpoint(began) { return .stop(stop) }
        noteFirstMessage(at: began)
        let run = worker.drive(batch.remaining, lease: lease, feed: feed, checkpoint: { checkpoint($0, refresh: false) }) { count, last, calls, now in
            tally.messages += count
            tally.luaCalls.merge(calls)
            feed.finished(through: last.offset)
            commitIfDue(at: now)
        }
        tally.busy += clock.now - began
        if let nanoseconds = run.failedCallNanoseconds { tally.luaCalls.add(.nanoseconds(nanoseconds)) }
        batch.removeFirst(run.done)
        switch run.next {
        case .finished, .oneByOne: return nil
        case .failed(let failure):
            failedFirst = failure
            return nil
        case .stop(let stop), .abandoned(let stop): return .stop(stop)
        case .emitFailed: return .reread
        }
    }

    /// `process(msg)` one message at a time, with retries and dead letters
    /// (`Worker.handle`).
    private mutating func processEach(_ batch: inout KafkaMessageBatch, failedFirst: String?) -> BatchEnd {
        var failedFirst = failedFirst
        while let message = batch.first {
            let given = failedFirst
            failedFirst = nil
            let began = clock.now
            if let stop = checkpoint(began) { return .stop(stop) }
            // Read again from the failed message: what was fetched ahead is dropped.
            if feed.emits.hasFailure { return .reread }
            if let error = message.error {
                worker.environment.logger.warning("consumer error on \(lease.partition): \(error)", metadata: worker.logMetadata)
                batch.removeFirst()
                continue
            }
            noteFirstMessage(at: began)
            var ended = began
            let outcome = worker.handle(message, lease: lease, feed: feed, calls: &tally.luaCalls, began: began, ended: &ended, failedFirst: given)
            tally.busy += ended - began
            switch outcome {
            case .done(let failures, let deadLettered):
                tally.messages += 1
                tally.errors += failures
                tally.deadLettered += deadLettered ? 1 : 0
                feed.finished(through: message.offset)
                batch.removeFirst()
                // Within a long batch too: a rebalance is noticed (and
                // commits held) at the first refused commit, and what
                // the next owner redoes is bounded by this interval.
                commitIfDue(at: ended)
            case .abandoned(let stop):
                return .stop(stop)
            }
        }
        return .handled
    }

    /// The reason to let go now, or nil to go on. Announces the slice
    /// boundary once, and applies a renewal. `refresh`: false while the
    /// script runs (`drive`), whose state must not be switched then.
    mutating func checkpoint(_ now: ContinuousClock.Instant, refresh: Bool = true) -> SliceEndReason? {
        if let stop = lease.control.stopReason { return stop }
        if refresh { worker.refreshScript() }
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
        let yielded = worker.script?.bindings.yieldRequested == true
        if !announced && (now >= deadline || yielded) { announce(yielded ? .yield : .slice) }
        return nil
    }

    /// Reports the slice boundary and goes on in overtime.
    private mutating func announce(_ reason: SliceEndReason) {
        worker.script?.bindings.yieldRequested = false
        announced = true
        onReport(report(reason, final: false))
        handoffGap = nil
        tally = SliceTally()
        worker.commitProgress(feed)
        lastCommit = clock.now
    }

    /// The handoff gap ends at the first message this lease handles.
    private mutating func noteFirstMessage(at began: ContinuousClock.Instant) {
        guard let from = handoffFrom else { return }
        handoffGap = began - from
        handoffFrom = nil
    }

    /// Commits the position if `commit_interval` passed since the last commit.
    private mutating func commitIfDue(at now: ContinuousClock.Instant) {
        guard now - lastCommit >= WorkerEnvironment.commitInterval else { return }
        worker.commitProgress(feed)
        lastCommit = now
    }

    /// Lets go of the partition and reports the lease's end. A handoff lets
    /// go first (waking threads to commit or report could get this thread
    /// preempted while the successor waits; the successor commits the
    /// position within commit_interval); any other end commits first.
    func end(_ reason: SliceEndReason) {
        let final = report(reason, final: true)
        if !(reason == .slice && lease.control.takeoverRequested && lease.control.stopReason == nil) {
            worker.commitProgress(feed)
        }
        lease.control.release(at: final.endedAt, messagesWaiting: final.readyAtEnd)
        onReport(final)
    }

    private func report(_ reason: SliceEndReason, final: Bool) -> SliceReport {
        SliceReport(
            lease: lease, reason: reason, messages: tally.messages, errors: tally.errors,
            deadLettered: tally.deadLettered, busy: tally.busy, luaCalls: tally.luaCalls, startedAt: sliceStart, endedAt: .now,
            nextOffset: feed.nextOffset >= 0 ? feed.nextOffset : nil,
            readyAtEnd: feed.readyCount > 0, handoffGap: handoffGap, overtime: final && announced, final: final)
    }
}
