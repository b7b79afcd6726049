import Logging

/// A validated `rotate()` answer (or the default policy's choice).
struct RotationDecision: Equatable {
    var worker: Int
    var partition: TopicPartition
    var sliceMs: Int
}

extension RotationCoordinator {
    /// The group's topics that have partitions in this process, in configured order.
    var activeTopics: [String] {
        group.topics.filter { topic in slots.keys.contains { $0.topic == topic } }
    }

    var currentTopic: String? {
        let topics = activeTopics
        return topics.isEmpty ? nil : topics[topicIndex % topics.count]
    }

    /// Messages waiting on `partition`: fetched and not processed, or known to
    /// be on the broker past the next offset.
    func lag(_ partition: TopicPartition) -> Int64 {
        guard let feed = feeds[partition] else { return 0 }
        let ready = Int64(feed.readyCount)
        guard feed.nextOffset >= 0,
              let marks = consumer.watermarks(topic: partition.topic, partition: partition.partition), marks.high >= 0
        else { return ready }
        return max(ready, marks.high - feed.nextOffset)
    }

    func hasWork(_ partition: TopicPartition) -> Bool {
        guard let slot = slots[partition], !slot.revoked else { return false }
        // A failed emit is work too: the partition must be read again from it.
        return lag(partition) > 0 || feeds[partition]?.emits.hasFailure == true
    }

    func topicHasWork(_ topic: String) -> Bool {
        slots.keys.contains { $0.topic == topic && hasWork($0) }
    }

    /// The seed's rule: once every worker had a slice on the current topic
    /// (or it has nothing to do), move to the next topic that has work.
    func advanceTopicIfDone() {
        let topics = activeTopics
        guard let current = currentTopic else { return }
        let done = hadTurn.count >= workers.count || !topicHasWork(current)
        guard done else { return }
        for step in 1...topics.count {
            let candidate = (topicIndex + step) % topics.count
            if topicHasWork(topics[candidate]) {
                if topics[candidate] != current {
                    logger.debug("group moves to the next topic", metadata: [LogKey.group: "\(group.name)", LogKey.topic: "\(topics[candidate])"])
                }
                topicIndex = candidate
                hadTurn = []
                return
            }
        }
    }

    /// Idle workers in round-robin order after `worker` (which comes last).
    func idleWorkers(after worker: Int) -> [Int] {
        (1...workers.count).map { (worker + $0) % workers.count }.filter { activity[$0].lease == nil }
    }

    /// A free partition with work in the current topic, the one waiting longest first.
    func nextPartition(preferring preferred: TopicPartition? = nil) -> TopicPartition? {
        guard let topic = currentTopic else { return nil }
        if let preferred, preferred.topic == topic, slots[preferred]?.holder == nil, hasWork(preferred) { return preferred }
        return slots
            .filter { $0.key.topic == topic && $0.value.holder == nil && hasWork($0.key) }
            .min { lhs, rhs in
                switch (lhs.value.lastEnd, rhs.value.lastEnd) {
                case (nil, nil): return lhs.key < rhs.key
                case (nil, _): return true
                case (_, nil): return false
                case let (l?, r?): return l < r || (l == r && lhs.key < rhs.key)
                }
            }?.key
    }

    /// The default policy: the next idle worker after the one whose slice
    /// ended takes the same partition if it still has work (else the free
    /// partition of the current topic waiting longest). When no other worker
    /// is idle, the same worker continues.
    func defaultDecision(after report: SliceReport) -> RotationDecision? {
        let ended = report.lease.partition
        let holder = report.lease.workerIndex
        let stillHeld = !report.final && slots[ended]?.holder == holder
        if stillHeld && ended.topic != currentTopic { return nil }  // the group moved on: let go
        guard let worker = idleWorkers(after: holder).first else {
            return stillHeld ? RotationDecision(worker: holder, partition: ended, sliceMs: group.sliceMs) : nil
        }
        if stillHeld { return RotationDecision(worker: worker, partition: ended, sliceMs: group.sliceMs) }
        guard let partition = nextPartition(preferring: ended) else { return nil }
        return RotationDecision(worker: worker, partition: partition, sliceMs: group.sliceMs)
    }

    /// `rotate(ctx)`'s answer, or nil (default policy) on nil, an invalid
    /// answer or an error, which is logged.
    func askPolicy(after report: SliceReport) -> RotationDecision? {
        if policyGeneration != catalog.generation { try? loadPolicy(strict: false) }
        guard let policy, policy.hasFunction("rotate") else { return nil }
        do {
            let answer: LuaValue
            let started = ContinuousClock.now
            defer { catalog.recordCall(script: ScriptCatalog.rotate, hook: "rotate", .now - started) }
            do {
                answer = try policy.call("rotate", [context(after: report)], results: 1)[0]
            } catch {
                catalog.countError(script: ScriptCatalog.rotate, hook: "rotate")
                throw error
            }
            return try parse(answer, after: report)
        } catch {
            logger.warning("rotate() answer not used, default policy applies: \(error)", metadata: [LogKey.group: "\(group.name)", LogKey.script: "\(policy.script)"])
            return nil
        }
    }

    /// A slice boundary of a lease that goes on in overtime: decide who
    /// continues. Same worker and partition: renew. Another worker, same
    /// partition: make-before-break handoff. Another partition: the holder
    /// lets go, and the chosen worker gets the other partition.
    func decideAtBoundary(_ report: SliceReport) {
        let lease = report.lease
        guard slots[lease.partition]?.revoked == false else {
            // Being revoked: neither renewed nor handed on; let go now.
            lease.control.requestStop(.revoked)
            return
        }
        if lease.partition.topic == currentTopic { hadTurn.insert(lease.workerIndex) }
        advanceTopicIfDone()
        guard let decision = askPolicy(after: report) ?? defaultDecision(after: report) else {
            lease.control.requestStop(.slice)
            return
        }
        switch (decision.worker == lease.workerIndex, decision.partition == lease.partition) {
        case (true, true):
            lease.control.renew(sliceMs: decision.sliceMs)
        case (false, true):
            grant(worker: decision.worker, partition: lease.partition, sliceMs: decision.sliceMs, handoffFrom: lease)
        case (false, false):
            lease.control.requestStop(.slice)
            grant(worker: decision.worker, partition: decision.partition, sliceMs: decision.sliceMs)
        case (true, false):
            lease.control.requestStop(.slice)
            pendingGrants[lease.workerIndex] = (decision.partition, decision.sliceMs)
        }
    }

    /// After a lease ended without a boundary decision (it ran dry): ask
    /// `rotate(ctx)` (or the default) who takes which partition next.
    func rotate(after report: SliceReport) {
        if report.lease.partition.topic == currentTopic { hadTurn.insert(report.lease.workerIndex) }
        advanceTopicIfDone()
        if let decision = askPolicy(after: report) ?? defaultDecision(after: report) {
            grant(worker: decision.worker, partition: decision.partition, sliceMs: decision.sliceMs)
        }
    }

    /// Reads a `rotate()` answer; nil means "use the default policy".
    func parse(_ answer: LuaValue, after report: SliceReport) throws -> RotationDecision? {
        guard let policy else { return nil }
        func invalid(_ message: String) -> LuaError { LuaError(script: policy.script, line: nil, message: "rotate(): \(message)") }
        let ended = report.lease.partition
        let holder = report.final ? nil : report.lease.workerIndex
        if case .nil = answer { return nil }
        guard case .table = answer else { throw invalid("must return nil or a table, got \(answer.typeName)") }
        guard case .string(let workerID) = answer["worker"] else { throw invalid("field 'worker' must name a worker, got \(answer["worker"].typeName)") }
        guard let worker = workers.firstIndex(where: { $0.id == workerID }) else { throw invalid("no worker '\(workerID)' in group \(group.name)") }
        guard activity[worker].lease == nil || worker == holder else { throw invalid("worker '\(workerID)' is busy") }
        var sliceMs = group.sliceMs
        if case .nil = answer["slice_ms"] {} else {
            guard let value = answer["slice_ms"].intValue, value > 0, value <= 86_400_000 else { throw invalid("field 'slice_ms' must be a positive integer") }
            sliceMs = Int(value)
        }
        /// Free, or held by the worker whose slice just ended.
        func available(_ partition: TopicPartition) -> Bool {
            guard let slot = slots[partition], !slot.revoked else { return false }
            return slot.holder == nil || slot.holder == holder
        }
        let partition: TopicPartition
        switch (answer["topic"], answer["partition"]) {
        case (.nil, .nil):
            if available(ended) && ended.topic == currentTopic && (holder != nil || hasWork(ended)) {
                partition = ended
            } else if let chosen = nextPartition() {
                partition = chosen
            } else {
                return nil
            }
        case (.string(let topic), .nil):
            guard let chosen = slots.keys.filter({ $0.topic == topic && available($0) && hasWork($0) }).min() else {
                throw invalid("topic '\(topic)' has no free partition with work here")
            }
            partition = chosen
        case (.string(let topic), let number):
            guard let id = number.intValue else { throw invalid("field 'partition' must be an integer") }
            partition = TopicPartition(topic: topic, partition: Int32(truncatingIfNeeded: id))
            guard slots[partition].map({ !$0.revoked }) == true else { throw invalid("partition \(partition) is not assigned to this process") }
            guard available(partition) else { throw invalid("partition \(partition) is held by another worker") }
        default:
            throw invalid("field 'topic' must be a string when 'partition' is given")
        }
        return RotationDecision(worker: worker, partition: partition, sliceMs: sliceMs)
    }

    /// Gives every idle worker a free partition with work, round robin.
    func fill() {
        guard mayGrant else { return }
        advanceTopicIfDone()
        while let partition = nextPartition() {
            guard let worker = idleWorkers(after: fillCursor).first else { return }
            fillCursor = worker
            grant(worker: worker, partition: partition, sliceMs: group.sliceMs)
        }
    }
}
