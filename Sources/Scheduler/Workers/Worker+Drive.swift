import CLua
import Foundation

/// How a driven run of `process(msg)` calls ended (`Worker.drive`).
struct DrivenRun {
    /// Messages handled from the start of the run: processed, their emits
    /// handed to the producer, marked finished. The caller destroys them.
    var done = 0
    var next = Next.finished
    /// How long the call of a message whose first attempt failed took.
    var failedCallNanoseconds: Int64?

    enum Next {
        /// Every message of the run is done.
        case finished
        /// The lease must end before message `done`.
        case stop(SliceEndReason)
        /// An emit of this partition failed: read again (drop the rest).
        case emitFailed
        /// Message `done` failed its first attempt (it raised, answered
        /// false, or an emit of it was refused): retry it with `handle`.
        case failed(String)
        /// Message `done` was processed but the lease must end before its
        /// emits could be handed over: it stays unprocessed.
        case abandoned(SliceEndReason)
        /// Go on one message at a time from message `done` (a new
        /// process.lua must be switched to first).
        case oneByOne
    }
}

extension Worker {
    /// Whether `messages` may go through `drive`: nothing about them calls
    /// for the one-by-one path (a consumer error, an emit failure on record,
    /// a message being retried).
    func mayDrive(_ messages: ArraySlice<KafkaMessageView>, feed: LaneFeed) -> Bool {
        guard script != nil, !feed.emits.hasFailure else { return false }
        return messages.allSatisfy { $0.error == nil && feed.emits.failedRounds(at: $0.offset) == 0 }
    }

    /// Messages, or nanoseconds of calls, between two checkpoints of a
    /// driven run: the checks cost more than a no-op process() (a lock,
    /// the clock, atomics), while a slice is tens of milliseconds.
    static let driveCheckEvery = 32
    static let driveCheckNanoseconds: Int64 = 200_000

    /// Calls `process(msg)` for `messages` in one call into Lua (each call
    /// under its own budget, as one at a time): the Swift work per message
    /// (emits, progress, the slice checkpoint) runs between two calls, from
    /// C, so the per-message path costs little more than process() itself.
    /// Stops at the first message whose first attempt fails, or when
    /// `checkpoint` says the lease must end. Each message's emits are
    /// handed over right after its call; `handled(count, last message,
    /// their calls, now)` reports the messages done since the last report,
    /// then `checkpoint` runs: after every `driveCheckEvery` messages,
    /// `driveCheckNanoseconds` of calls, a message that emitted or yielded,
    /// and at the end.
    func drive(
        _ messages: ArraySlice<KafkaMessageView>, lease: Lease, feed: LaneFeed,
        checkpoint: (ContinuousClock.Instant) -> SliceEndReason?,
        handled: (Int, KafkaMessageView, LuaCallTally, ContinuousClock.Instant) -> Void
    ) -> DrivenRun {
        guard let script else { return DrivenRun(next: .oneByOne) }
        let batch = Array(messages)
        var run = DrivenRun()
        var calls = LuaCallTally()
        var unreported = 0
        var sinceCheck: Int64 = 0
        let each = script.callProcessEach(batch[...], group: environment.group.name, worker: id) { index, nanoseconds in
            let message = batch[index]
            let emitted = !script.bindings.emitted.isEmpty
            if emitted {
                switch self.emit(script.bindings.takeEmitted(), offset: message.offset, lease: lease, feed: feed) {
                case .sent: break
                case .invalid(let reason):
                    run.failedCallNanoseconds = nanoseconds
                    run.next = .failed(reason)
                    return false
                case .stopped(let stop):
                    run.next = .abandoned(stop)
                    return false
                }
            }
            run.done = index + 1
            calls.add(.nanoseconds(nanoseconds))
            unreported += 1
            sinceCheck += nanoseconds
            let last = index + 1 == batch.count
            if !last && !emitted && unreported < Self.driveCheckEvery && sinceCheck < Self.driveCheckNanoseconds
                && !script.bindings.yieldRequested {
                return true
            }
            let now = ContinuousClock.now
            handled(unreported, message, calls, now)
            calls = LuaCallTally()
            unreported = 0
            sinceCheck = 0
            guard !last else { return true }
            // What the one-by-one loop checks before each message. A new
            // process.lua is switched to between two messages, not while
            // this state runs.
            if self.environment.catalog.generation != self.scriptGeneration {
                run.next = .oneByOne
                return false
            }
            if let stop = checkpoint(now) {
                run.next = .stop(stop)
                return false
            }
            if feed.emits.hasFailure {
                run.next = .emitFailed
                return false
            }
            return true
        }
        if unreported > 0 { handled(unreported, batch[run.done - 1], calls, .now) }
        if run.done == each.done, run.done < batch.count, case .finished = run.next {
            // Stopped by a failed call (not by `after`): message `done` failed.
            run.failedCallNanoseconds = clua_now_ns() - each.lastStartedNs
            run.next = failedAttempt(each)
        }
        return run
    }

    /// The failure of the call that ended a driven run, counted and logged
    /// as `attempt` does for one message.
    private func failedAttempt(_ each: LuaState.EachRun) -> DrivenRun.Next {
        switch each.answer {
        case .success(let answer):
            return .failed(Self.processFailure(answer)?.description ?? "process() failed")
        case .failure(let error):
            environment.catalog.countError(script: ScriptCatalog.process, hook: "process")
            if let lua = error as? LuaError, let traceback = lua.traceback {
                environment.logger.debug("process() traceback:\n\(traceback)", metadata: logMetadata)
            }
            return .failed("\(error)")
        }
    }
}
