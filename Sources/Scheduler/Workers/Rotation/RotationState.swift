/// The rules of a group's rotation as a value: slots, leases, holders,
/// pending grants, revocations, topics in turn, the rebalancing pause and
/// stopping. `handle` takes one event (with the time it happened) and
/// returns the decisions the coordinator carries out. No Kafka, no threads,
/// no clock: facts about messages come from `RotationFacts`, the choice at a
/// slice boundary from a `RotationPolicy`, whose answer is validated here.
///
/// Invariants (checked by the randomised test after every step):
/// - a slot has one holder at most; other leases on it that have not let go
///   are the holder's chain of handoffs (each waits for the one before);
/// - nothing is granted or renewed on a revoked slot, nor while paused or stopping;
/// - a revocation is released only once no lease holds any of its slots;
/// - a commit never sends more than the facts call committable.
struct RotationState: Sendable {
    let rules: RotationRules
    private(set) var slots: [SlotKey: RotationSlot] = [:]
    /// The lease of each worker that has one.
    private(set) var leases: [Int: LeaseRecord] = [:]
    /// Slots promised to a worker once its current lease has ended.
    private(set) var pendingGrants: [Int: (slot: SlotKey, sliceMs: Int)] = [:]
    /// Rebalance callbacks waiting for their slots to be let go.
    private(set) var revocations: [(ticket: Int, slots: Set<SlotKey>)] = []
    private(set) var topicIndex = 0
    /// Workers that had a slice on the current topic.
    private(set) var hadTurn: Set<Int> = []
    private(set) var fillCursor = 0
    /// Since when commits are held for a rebalance (a commit was refused for
    /// it, or partitions were given up under the cooperative protocol), if they are.
    private(set) var rebalancingSince: ContinuousClock.Instant?
    /// Leases are paused: a commit was refused for a rebalance, and no
    /// assignment came since.
    private(set) var pausedForRebalance = false
    /// Assignments still to come in the round that revoked partitions (cooperative).
    private(set) var assignmentsBeforeRejoin = 0
    private(set) var stopping = false
    /// When the last lease on a slot this daemon gave up ended: a slot
    /// assigned again keeps its turn. Without it, every assignment (the eager
    /// protocol revokes and assigns everything at each rebalance) started
    /// again from the lowest partition, and with rebalances a few seconds
    /// apart the highest partitions of a member never got a lease.
    private(set) var lastEndOfGivenUp: [SlotKey: ContinuousClock.Instant] = [:]
    private var nextLeaseID: UInt64 = 1
    private var lastIdleCommit: ContinuousClock.Instant?

    init(rules: RotationRules) {
        self.rules = rules
    }

    /// Leases are paused for a rebalance.
    var paused: Bool { pausedForRebalance }

    /// New leases may be granted: not stopping, not paused.
    var mayGrant: Bool { !stopping && !paused }

    /// The lease with `id`, if it runs.
    func lease(_ id: UInt64) -> LeaseRecord? { leases.values.first { $0.id == id } }

    /// Applies `event`, which happened at `now`.
    mutating func handle(_ event: RotationEvent, at now: ContinuousClock.Instant, facts: some RotationFacts, policy: some RotationPolicy) -> [RotationDecision] {
        var step = Step(facts: facts, policy: policy, now: now)
        switch event {
        case .assigned(let assigned): assign(assigned, &step)
        case .revoking(let revoked, let ticket, let lost, let assignFailed):
            revoke(revoked, ticket: ticket, lost: lost, assignFailed: assignFailed, &step)
        case .report(let report): received(report, &step)
        case .commitRefused(let rebalance): commitRefused(rebalance: rebalance, &step)
        case .tick: tick(&step)
        case .stop: stop(&step)
        }
        return step.decisions
    }

    // MARK: Transitions

    private mutating func assign(_ assigned: [SlotKey], _ step: inout Step) {
        // An assignment ends a rebalance round, and with it the pause.
        pausedForRebalance = false
        if assignmentsBeforeRejoin > 0 {
            assignmentsBeforeRejoin -= 1
        } else {
            endRebalance(&step)
        }
        for slot in assigned { slots[slot] = RotationSlot(lastEnd: lastEndOfGivenUp[slot]) }
        step.decisions.append(.note(.assigned(assigned.sorted())))
        fill(&step)
    }

    private mutating func revoke(_ revoked: Set<SlotKey>, ticket: Int, lost: Bool, assignFailed: Bool, _ step: inout Step) {
        // A refused assign call starts no round (nothing to wait for).
        if rules.cooperative, !revoked.isEmpty, !stopping, !assignFailed {
            // Cooperative: having given partitions up, the member rejoins for
            // another round at once; a commit sent while its JoinGroup waits
            // would carry the generation that round replaces (see CommitGate).
            // The assignment that comes with the revocation belongs to the
            // round now ending, so commits wait for the one after it.
            holdCommits(note: true, &step)
            assignmentsBeforeRejoin = lost ? 0 : 1
        }
        for slot in revoked { slots[slot]?.revoked = true }
        // Every lease on them, a successor waiting for a handoff included.
        for lease in leases.values.sorted(by: { $0.id < $1.id }) where revoked.contains(lease.slot) && lease.stopReason != .revoked {
            stopLease(lease.worker, .revoked, &step)
        }
        pendingGrants = pendingGrants.filter { !revoked.contains($0.value.slot) }
        revocations.append((ticket, revoked))
        settleRevocations(&step)
    }

    private mutating func received(_ report: LeaseReport, _ step: inout Step) {
        guard let lease = leases[report.worker], lease.id == report.lease else { return }
        // A successor runs only once its predecessor let go.
        if let from = lease.handoffFrom, let predecessor = self.lease(from) { leases[predecessor.worker]?.released = true }
        var pending: (slot: SlotKey, sliceMs: Int)?
        if report.final {
            leases[report.worker] = nil
            pending = pendingGrants.removeValue(forKey: report.worker)
            if slots[report.slot]?.holder == report.worker { slots[report.slot]?.holder = nil }
            slots[report.slot]?.lastEnd = report.endedAt
        }
        // A report that completes a revocation asks no policy: the group is rebalancing.
        if settleRevocations(&step) || !mayGrant {
            settleIdle(&step)
            return
        }
        if !report.final {
            decideAtBoundary(lease, report, &step)
        } else {
            if let pending { grant(report.worker, pending.slot, sliceMs: pending.sliceMs, &step) }
            // A lease that ran dry ended without a boundary decision: ask now.
            if report.reason == .drained && slots[report.slot]?.holder == nil { rotate(after: report, &step) }
        }
        fill(&step)
    }

    private mutating func commitRefused(rebalance: Bool, _ step: inout Step) {
        step.decisions.append(.resendCommits(slots.keys.sorted()))
        guard rebalance, !paused, !stopping else { return }
        // Commits sent now would carry the generation the rebalance replaces
        // (librdkafka takes ILLEGAL_GENERATION as the loss of every partition).
        // Cooperative: the partitions that stay here stay, and those that
        // move are revoked after the round with a commit the group accepts,
        // so the leases go on and only commits wait for the round's
        // assignment. Eager: every partition is revoked at the rejoin, and
        // nothing processed from now on can be committed before that: stop
        // at the next message boundary rather than process what the next
        // owner would redo.
        guard !rules.cooperative else {
            holdCommits(note: true, &step)
            return
        }
        holdCommits(note: false, &step)
        pause(&step)
    }

    /// Ends every lease until the next assignment.
    private mutating func pause(_ step: inout Step) {
        pausedForRebalance = true
        step.decisions.append(.note(.paused))
        for worker in leases.keys.sorted() where leases[worker]?.stopReason == nil { stopLease(worker, .revoked, &step) }
        pendingGrants = [:]
    }

    private mutating func holdCommits(note: Bool, _ step: inout Step) {
        guard rebalancingSince == nil else { return }
        rebalancingSince = step.now
        step.decisions.append(.holdCommits(true))
        if note { step.decisions.append(.note(.commitsHeld)) }
    }

    private mutating func endRebalance(_ step: inout Step) {
        assignmentsBeforeRejoin = 0
        guard rebalancingSince != nil else { return }
        rebalancingSince = nil
        pausedForRebalance = false
        step.decisions.append(.holdCommits(false))
        // The held positions go out now, not at the next tick: on a busy
        // group the next round can start within milliseconds of this
        // assignment, and a position not committed by then waits for that
        // round too (a member killed meanwhile costs all of it).
        lastIdleCommit = nil
        commitIdle(&step)
    }

    private mutating func tick(_ step: inout Step) {
        if let since = rebalancingSince, step.now - since > rules.pauseGiveUp {
            // A member given nothing, or a refused commit with no rebalance after it.
            step.decisions.append(.note(.pauseGaveUp(after: rules.pauseGiveUp)))
            endRebalance(&step)
        } else if let since = rebalancingSince, rules.cooperative, !paused, !stopping, step.now - since > rules.holdBeforePause {
            pause(&step)
        }
        fill(&step)
        commitIdle(&step)
    }

    private mutating func stop(_ step: inout Step) {
        stopping = true
        pendingGrants = [:]
        for worker in leases.keys.sorted() where leases[worker]?.stopReason != .shutdown { stopLease(worker, .shutdown, &step) }
        settleIdle(&step)
    }

    // MARK: Rules

    /// Releases revocations whose slots no lease holds; true if any was released.
    @discardableResult
    private mutating func settleRevocations(_ step: inout Step) -> Bool {
        var released = false
        var waiting: [(ticket: Int, slots: Set<SlotKey>)] = []
        for waiter in revocations {
            if leases.values.contains(where: { waiter.slots.contains($0.slot) }) {
                waiting.append(waiter)
                continue
            }
            for slot in waiter.slots {
                if let lastEnd = slots[slot]?.lastEnd { lastEndOfGivenUp[slot] = lastEnd }
                slots[slot] = nil
            }
            step.decisions.append(.release(ticket: waiter.ticket, slots: waiter.slots.sorted()))
            released = true
        }
        revocations = waiting
        return released
    }

    private mutating func settleIdle(_ step: inout Step) {
        guard stopping, leases.isEmpty else { return }
        step.decisions.append(.quiesced(slots.keys.sorted()))
    }

    private mutating func stopLease(_ worker: Int, _ reason: SliceEndReason, _ step: inout Step) {
        guard let lease = leases[worker] else { return }
        leases[worker]?.stopReason = reason
        step.decisions.append(.stop(lease: lease.id, reason: reason))
    }

    /// Gives `slot` to idle `worker`; with `from`, the slot's holder lets go
    /// as soon as the new worker runs (make-before-break). Refused on a
    /// revoked or unknown slot, while paused or stopping, to a busy worker,
    /// or when someone else holds the slot.
    @discardableResult
    private mutating func grant(_ worker: Int, _ slot: SlotKey, sliceMs: Int, from: LeaseRecord? = nil, _ step: inout Step) -> Bool {
        guard mayGrant, let state = slots[slot], !state.revoked, leases[worker] == nil,
              state.holder == from?.worker, from?.stopReason == nil else { return false }
        let id = nextLeaseID
        nextLeaseID += 1
        slots[slot]?.holder = worker
        leases[worker] = LeaseRecord(id: id, worker: worker, slot: slot, sliceMs: sliceMs, grantedAt: step.now, handoffFrom: from?.id)
        step.decisions.append(.grant(LeaseGrant(id: id, worker: worker, slot: slot, sliceMs: sliceMs, handoffFrom: from?.id)))
        return true
    }

    /// A slice boundary of a lease that goes on in overtime: same worker and
    /// slot: renew; another worker, same slot: handoff; another slot: the
    /// holder lets go, and the chosen worker gets the other slot.
    private mutating func decideAtBoundary(_ lease: LeaseRecord, _ report: LeaseReport, _ step: inout Step) {
        guard lease.stopReason == nil else { return }  // already told to stop
        guard slots[lease.slot]?.revoked == false else {
            // Being revoked: neither renewed nor handed on; let go now.
            stopLease(lease.worker, .revoked, &step)
            return
        }
        noteTurn(lease.worker, on: lease.slot, &step)
        guard let choice = choose(after: report, &step) else {
            stopLease(lease.worker, .slice, &step)
            return
        }
        switch (choice.worker == lease.worker, choice.slot == lease.slot) {
        case (true, true):
            leases[lease.worker]?.sliceMs = choice.sliceMs
            step.decisions.append(.renew(lease: lease.id, sliceMs: choice.sliceMs))
        case (false, true):
            // A refused handoff must not leave the holder in overtime for good.
            if !grant(choice.worker, lease.slot, sliceMs: choice.sliceMs, from: lease, &step) { stopLease(lease.worker, .slice, &step) }
        case (false, false):
            stopLease(lease.worker, .slice, &step)
            grant(choice.worker, choice.slot, sliceMs: choice.sliceMs, &step)
        case (true, false):
            stopLease(lease.worker, .slice, &step)
            pendingGrants[lease.worker] = (choice.slot, choice.sliceMs)
        }
    }

    /// After a lease ended without a boundary decision (it ran dry).
    private mutating func rotate(after report: LeaseReport, _ step: inout Step) {
        noteTurn(report.worker, on: report.slot, &step)
        if let choice = choose(after: report, &step) {
            grant(choice.worker, choice.slot, sliceMs: choice.sliceMs, &step)
        }
    }

    private mutating func noteTurn(_ worker: Int, on slot: SlotKey, _ step: inout Step) {
        if slot.topic == currentTopic { hadTurn.insert(worker) }
        advanceTopicIfDone(&step)
    }

    /// Gives every idle worker a free slot with work, round robin.
    private mutating func fill(_ step: inout Step) {
        guard mayGrant else { return }
        advanceTopicIfDone(&step)
        while let slot = nextSlot(facts: step.facts) {
            guard let worker = idleWorkers(after: fillCursor).first else { return }
            fillCursor = worker
            grant(worker, slot, sliceMs: rules.sliceMs, &step)
        }
    }

    /// The seed's rule: once every worker had a slice on the current topic
    /// (or it has nothing to do), move to the next topic that has work.
    private mutating func advanceTopicIfDone(_ step: inout Step) {
        let topics = activeTopics
        guard let current = currentTopic else { return }
        let done = hadTurn.count >= rules.workers.count || !topicHasWork(current, facts: step.facts)
        guard done else { return }
        for offset in 1...topics.count {
            let candidate = (topicIndex + offset) % topics.count
            guard topicHasWork(topics[candidate], facts: step.facts) else { continue }
            if topics[candidate] != current { step.decisions.append(.note(.topicMoved(to: topics[candidate]))) }
            topicIndex = candidate
            hadTurn = []
            return
        }
    }

    /// Commits the positions of slots nobody holds that moved since their
    /// last commit (the last emits of an ended lease, refused commits).
    private mutating func commitIdle(_ step: inout Step) {
        guard rebalancingSince == nil else { return }
        if let last = lastIdleCommit, step.now - last < rules.commitRetryInterval { return }
        let positions = slots.keys.sorted().filter { slots[$0]?.holder == nil }.compactMap { slot -> SlotOffset? in
            let position = step.facts.commitPosition(slot)
            return position.committable >= 0 && position.committable != position.committed ? SlotOffset(slot: slot, offset: position.committable) : nil
        }
        guard !positions.isEmpty else { return }
        lastIdleCommit = step.now
        step.decisions.append(.commit(positions))
    }
}
