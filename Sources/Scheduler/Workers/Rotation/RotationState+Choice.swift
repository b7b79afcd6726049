/// Queries and choices of the rotation state: topics in turn, the default
/// policy, and the validation of a policy's answer.
extension RotationState {
    /// The group's topics that have slots in this process, in configured order.
    var activeTopics: [String] {
        let present = Set(slots.keys.map(\.topic))
        return rules.topics.filter { present.contains($0) }
    }

    /// The topic the group works on now.
    var currentTopic: String? {
        let topics = activeTopics
        return topics.isEmpty ? nil : topics[topicIndex % topics.count]
    }

    /// Messages waiting on a slot that may be granted (assigned, not revoked).
    func hasWork(_ slot: SlotKey, facts: some RotationFacts) -> Bool {
        guard let state = slots[slot], !state.revoked else { return false }
        return facts.hasWork(slot)
    }

    func topicHasWork(_ topic: String, facts: some RotationFacts) -> Bool {
        slots.keys.contains { $0.topic == topic && hasWork($0, facts: facts) }
    }

    /// Idle workers in round-robin order after `worker` (which comes last).
    func idleWorkers(after worker: Int) -> [Int] {
        let count = rules.workers.count
        return (1...count).map { (worker + $0) % count }.filter { leases[$0] == nil }
    }

    /// A free slot with work in the current topic: `preferred` if it has
    /// work, else the one waiting longest. Slots whose messages are already
    /// fetched come first: a worker given a slot whose messages are still on
    /// the broker waits for a fetch while fetched messages pile up elsewhere
    /// (a Fetch may bring each partition one produced batch at a time).
    func nextSlot(preferring preferred: SlotKey? = nil, facts: some RotationFacts) -> SlotKey? {
        guard let topic = currentTopic else { return nil }
        let free = fetchedFirst(slots.filter { $0.key.topic == topic && $0.value.holder == nil && hasWork($0.key, facts: facts) }, facts: facts)
        if let preferred, free[preferred] != nil { return preferred }
        return free
            .min { lhs, rhs in
                switch (lhs.value.lastEnd, rhs.value.lastEnd) {
                case (nil, nil): return lhs.key < rhs.key
                case (nil, _): return true
                case (_, nil): return false
                case let (l?, r?): return l < r || (l == r && lhs.key < rhs.key)
                }
            }?.key
    }

    /// The slots of `candidates` whose messages are already fetched, or all
    /// of them if none is.
    private func fetchedFirst<Value>(_ candidates: [SlotKey: Value], facts: some RotationFacts) -> [SlotKey: Value] {
        let fetched = candidates.filter { facts.hasFetched($0.key) }
        return fetched.isEmpty ? candidates : fetched
    }

    /// The next free slot granted would start on messages already fetched
    /// (published to the workers as `FetchedElsewhere`): a worker whose own
    /// slot ran dry should let go soon and be given them.
    func fetchedWaiting(facts: some RotationFacts) -> Bool {
        guard mayGrant, let next = nextSlot(facts: facts) else { return false }
        return facts.hasFetched(next)
    }

    /// The default policy: the next idle worker after the one whose slice
    /// ended takes the same slot if it still has work (else the free slot of
    /// the current topic waiting longest). When no other worker is idle, the
    /// same worker continues; when the group moved to another topic, it lets go.
    func defaultChoice(after question: RotationQuestion, facts: some RotationFacts) -> RotationChoice? {
        let ended = question.slot
        let holder = question.worker
        let stillHeld = !question.final && slots[ended]?.holder == holder
        if stillHeld && ended.topic != currentTopic { return nil }
        guard let worker = idleWorkers(after: holder).first else {
            return stillHeld ? RotationChoice(worker: holder, slot: ended, sliceMs: rules.sliceMs) : nil
        }
        if stillHeld { return RotationChoice(worker: worker, slot: ended, sliceMs: rules.sliceMs) }
        guard let slot = nextSlot(preferring: ended, facts: facts) else { return nil }
        return RotationChoice(worker: worker, slot: slot, sliceMs: rules.sliceMs)
    }

    /// The policy's answer if valid, else the default policy's choice.
    func choose(after report: LeaseReport, _ step: inout Step) -> RotationChoice? {
        let question = RotationQuestion(lease: report.lease, worker: report.worker, slot: report.slot, reason: report.reason, final: report.final)
        switch step.policy.answer(question, in: self) {
        case .useDefault:
            break
        case .invalid(let message):
            step.decisions.append(.note(.answerRejected(message)))
        case let .pick(worker, topic, partition, sliceMs, lane):
            switch validate(worker: worker, topic: topic, partition: partition, lane: lane, sliceMs: sliceMs, after: question, facts: step.facts) {
            case .success(let choice?): return choice
            case .success(nil): break
            case .failure(let rejection): step.decisions.append(.note(.answerRejected(rejection.message)))
            }
        }
        return defaultChoice(after: question, facts: step.facts)
    }

    /// Why a policy's answer was not used.
    struct Rejection: Error, Equatable {
        let message: String
    }

    /// Checks a `rotate()` answer against the state: the worker exists and is
    /// idle (or is the one whose slice ended), the slice length is sane, the
    /// slot is assigned here, not revoked, and free (or held by that worker).
    /// `.success(nil)`: nothing to choose (the default policy applies).
    func validate(
        worker workerID: String, topic: String?, partition: Int64?, lane: Int64? = nil, sliceMs requested: Int64?,
        after question: RotationQuestion, facts: some RotationFacts
    ) -> Result<RotationChoice?, Rejection> {
        func invalid(_ message: String) -> Result<RotationChoice?, Rejection> { .failure(Rejection(message: "rotate(): \(message)")) }
        if lane != nil && partition == nil { return invalid("field 'partition' must be given with 'lane'") }
        let holder = question.final ? nil : question.worker
        guard let worker = rules.workers.firstIndex(of: workerID) else { return invalid("no worker '\(workerID)' in group \(rules.group)") }
        guard leases[worker] == nil || worker == holder else { return invalid("worker '\(workerID)' is busy") }
        var sliceMs = rules.sliceMs
        if let requested {
            guard requested > 0, requested <= RotationRules.maxSliceMs else { return invalid("field 'slice_ms' must be a positive integer") }
            sliceMs = Int(requested)
        }
        /// Free, or held by the worker whose slice just ended.
        func available(_ slot: SlotKey) -> Bool {
            guard let state = slots[slot], !state.revoked else { return false }
            return state.holder == nil || state.holder == holder
        }
        let ended = question.slot
        let slot: SlotKey
        switch (topic, partition) {
        case (nil, nil):
            if available(ended) && ended.topic == currentTopic && holder != nil {
                slot = ended
            } else if let chosen = nextSlot(preferring: ended, facts: facts) {
                slot = chosen
            } else {
                return .success(nil)
            }
        case (let topic?, nil):
            guard let chosen = fetchedFirst(slots.filter { $0.key.topic == topic && available($0.key) && hasWork($0.key, facts: facts) }, facts: facts).keys.min() else {
                return invalid("topic '\(topic)' has no free partition with work here")
            }
            slot = chosen
        case (let topic?, let number?):
            let partition = TopicPartition(topic: topic, partition: Int32(truncatingIfNeeded: number))
            // Key lanes: the lane asked for; else the lane whose slice ended
            // if it is this partition's, else its free lane with work.
            var key = SlotKey(partition, lane: Int(truncatingIfNeeded: lane ?? 0))
            if lane == nil {
                if ended.partition == partition && available(ended) {
                    key = ended
                } else if let free = slots.keys.filter({ $0.partition == partition && available($0) && hasWork($0, facts: facts) }).min() {
                    key = free
                }
            }
            guard slots[key].map({ !$0.revoked }) == true else { return invalid("partition \(key) is not assigned to this process") }
            guard available(key) else { return invalid("partition \(key) is held by another worker") }
            slot = key
        case (nil, _?):
            return invalid("field 'topic' must be a string when 'partition' is given")
        }
        return .success(RotationChoice(worker: worker, slot: slot, sliceMs: sliceMs))
    }
}
