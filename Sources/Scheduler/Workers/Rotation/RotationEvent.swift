/// What happens to a group's rotation, as the coordinator's thread learns it.
/// Time comes in beside the event (`RotationState.handle(_:at:...)`).
enum RotationEvent: Equatable, Sendable {
    /// The group protocol gave these slots to this process.
    case assigned([SlotKey])
    /// The group protocol takes these slots away; `ticket` names the waiting
    /// rebalance callback, answered by `.release(ticket:slots:)`. `lost`: the
    /// member's generation is gone (no assignment follows in the same round).
    /// `assignFailed`: the slots were never really assigned (librdkafka
    /// refused the assign call), so no rebalance round is under way.
    case revoking(Set<SlotKey>, ticket: Int, lost: Bool = false, assignFailed: Bool = false)
    /// A worker reached a slice boundary (`final == false`: it goes on in
    /// overtime) or let go of its slot.
    case report(LeaseReport)
    /// The broker refused an offset commit; `rebalance`: because the group
    /// is rebalancing (`REBALANCE_IN_PROGRESS`, `ILLEGAL_GENERATION`, ...).
    case commitRefused(rebalance: Bool)
    /// Periodic: give-up of a pause, free slots with new work, idle commits.
    case tick
    /// The daemon stops: no new leases, every lease ends.
    case stop
}

/// The part of a worker's `SliceReport` the rules need.
struct LeaseReport: Equatable, Sendable {
    let lease: UInt64
    let worker: Int
    let slot: SlotKey
    let reason: SliceEndReason
    let final: Bool
    /// When the worker stopped taking messages (for a final report).
    let endedAt: ContinuousClock.Instant
}

/// What the shell must carry out, in order.
enum RotationDecision: Equatable, Sendable {
    /// Start a lease on the worker's thread.
    case grant(LeaseGrant)
    /// The same worker goes on with the same slot for another slice.
    case renew(lease: UInt64, sliceMs: Int)
    /// End the lease at its next message boundary.
    case stop(lease: UInt64, reason: SliceEndReason)
    /// Commit these positions (asynchronously): slots nobody holds whose
    /// position moved since their last commit.
    case commit([SlotOffset])
    /// Forget what was committed for these slots, so every position is sent
    /// again (a refused commit must not count as done).
    case resendCommits([SlotKey])
    /// Hold every async commit (true) while the group rebalances, or let
    /// them go again (false) once it has.
    case holdCommits(Bool)
    /// No lease holds these revoked slots any more: commit them synchronously,
    /// drop what was fetched, and let the rebalance callback return.
    case release(ticket: Int, slots: [SlotKey])
    /// Stopping, and no lease runs: the slots still assigned, whose final
    /// commit and partition queues must be done before the consumer closes.
    case quiesced([SlotKey])
    /// Worth a log line.
    case note(RotationNote)
}

/// Things the shell logs.
enum RotationNote: Equatable, Sendable {
    case assigned([SlotKey])
    case paused
    case commitsHeld
    case pauseGaveUp(after: Duration)
    case topicMoved(to: String)
    /// A `rotate()` answer was not used; the default policy applied.
    case answerRejected(String)
}

extension RotationState {
    /// What one transition sees and says.
    struct Step {
        let facts: any RotationFacts
        let policy: any RotationPolicy
        let now: ContinuousClock.Instant
        var decisions: [RotationDecision] = []
        init(facts: some RotationFacts, policy: some RotationPolicy, now: ContinuousClock.Instant) {
            self.facts = facts
            self.policy = policy
            self.now = now
        }
    }
}
