/// What the group looks like from outside, built from the same parts: the
/// `ctx` table `rotate(ctx)` receives and the `GET /groups` view. A value
/// made on the coordinator's thread from its current parts.
struct GroupViewBuilder {
    let group: GroupConfig
    /// The workers' ids, by index.
    let workerIDs: [String]
    /// Per-worker figures, by index.
    let activity: [WorkerActivity]
    /// The partitions assigned to this process, with the consumer's watermarks.
    let facts: FeedFacts

    /// `state`: the rules' state as the policy is asked (the coordinator's
    /// own copy is being changed at that moment).
    func context(after report: SliceReport, state: RotationState) -> LuaValue {
        let partition = report.lease.partition
        // Only the parts the policy sees: no handoff quantiles or lease
        // history on this path, which runs at every slice boundary.
        let workerViews = self.workerViews(now: .now, state: state)
        let partitionViews = self.partitionViews(state: state)
        var fields: [LuaValue: LuaValue] = [
            "group": .string(group.name),
            "topic": .string(partition.topic),
            "partition": .integer(Int64(partition.partition)),
            "lane": .integer(Int64(report.lease.slot.lane)),
            "worker": .string(workerIDs[report.lease.workerIndex]),
            "reason": .string(report.reason.rawValue),
            "slice": .table([
                "messages": .integer(Int64(report.messages)),
                "errors": .integer(Int64(report.errors)),
                "dead_lettered": .integer(Int64(report.deadLettered)),
                "elapsed_ms": .integer(Int64((report.endedAt - report.startedAt) / .milliseconds(1))),
                "slice_ms": .integer(Int64(report.lease.sliceMs)),
            ]),
            "slice_ms": .integer(Int64(group.sliceMs)),
            "topics": list(group.topics.map { .string($0) }),
        ]
        if let current = state.currentTopic { fields["current_topic"] = .string(current) }
        fields["workers"] = list(workerViews.map { worker in
            var entry: [LuaValue: LuaValue] = [
                "id": .string(worker.id), "state": .string(worker.state),
                "messages": .integer(Int64(worker.messages)), "errors": .integer(Int64(worker.errors)),
                "busy_ms": .integer(Int64(worker.busy_ms)), "slices": .integer(Int64(worker.slices)),
            ]
            if let lease = worker.lease {
                entry["topic"] = .string(lease.topic)
                entry["partition"] = .integer(Int64(lease.partition))
                entry["lane"] = .integer(Int64(lease.lane))
            }
            return .table(entry)
        })
        fields["partitions"] = list(partitionViews.map { view in
            var entry: [LuaValue: LuaValue] = [
                "topic": .string(view.topic), "partition": .integer(Int64(view.partition)),
                "committed": .integer(view.committed), "next_offset": .integer(view.next_offset),
                "lag": .integer(view.lag), "lanes": .integer(Int64(view.lanes.count)),
            ]
            if let holder = view.holder { entry["holder"] = .string(holder) }
            return .table(entry)
        })
        // The lanes of the partition whose slice ended, with their lags.
        let lanes = partitionViews.first { $0.topic == partition.topic && $0.partition == partition.partition }?.lanes ?? []
        fields["lanes"] = list(lanes.map { lane in
            var entry: [LuaValue: LuaValue] = [
                "lane": .integer(Int64(lane.lane)), "lag": .integer(Int64(lane.lag)), "next_offset": .integer(lane.next_offset),
            ]
            if let holder = lane.holder { entry["holder"] = .string(holder) }
            return .table(entry)
        })
        return .table(fields)
    }

    private func list(_ items: [LuaValue]) -> LuaValue {
        .table(Dictionary(uniqueKeysWithValues: items.enumerated().map { (LuaValue.integer(Int64($0.offset + 1)), $0.element) }))
    }

    /// The group's state now (`GET /groups`).
    func snapshot(state: RotationState, gaps: GapRecorder, history: LeaseHistory, emitBudget: EmitBudget) -> GroupView {
        let now = ContinuousClock.now
        return GroupView(
            name: group.name, topics: group.topics, current_topic: state.currentTopic, slice_ms: group.sliceMs,
            workers: workerViews(now: now, state: state), partitions: partitionViews(state: state),
            handoff: HandoffView(
                count: gaps.count, p50_ms: gaps.quantileMs(0.5), p99_ms: gaps.quantileMs(0.99), last_ms: gaps.lastMs(20)),
            recent_leases: history.spans.filter { now - $0.end <= LeaseHistory.window }.map { span in
                LeaseSpanView(worker: workerIDs[span.worker], topic: span.partition.topic, partition: span.partition.partition,
                              start_ms_ago: Int((now - span.start) / .milliseconds(1)), end_ms_ago: Int((now - span.end) / .milliseconds(1)))
            },
            emits_in_flight: emitBudget.current,
            emits_in_flight_peak: emitBudget.peak,
            max_inflight_emits: group.maxInflightEmits)
    }

    /// Every worker of the pool, in order.
    func workerViews(now: ContinuousClock.Instant, state: RotationState) -> [WorkerView] {
        workerIDs.indices.map { index -> WorkerView in
            let entry = activity[index]
            let lease = state.leases[index]
            return WorkerView(
                id: workerIDs[index],
                state: lease == nil ? "idle" : "busy",
                lease: lease.map { LeaseView(topic: $0.slot.topic, partition: $0.slot.partition.partition, lane: $0.slot.lane,
                                             held_ms: Int((now - $0.grantedAt) / .milliseconds(1))) },
                messages: entry.messages, errors: entry.errors, dead_lettered: entry.deadLettered,
                busy_ms: Int(entry.busy / .milliseconds(1)), slices: entry.slices)
        }
    }

    /// Every partition assigned to this process, sorted, with its lanes.
    func partitionViews(state: RotationState) -> [PartitionView] {
        let byPartition = Dictionary(grouping: state.slots.keys, by: \.partition)
        return byPartition.keys.sorted().map { partition -> PartitionView in
            let feed = facts.feeds[partition]
            let lanes = byPartition[partition, default: []].sorted().map { slot in
                LaneView(lane: slot.lane, holder: state.slots[slot]?.holder.map { workerIDs[$0] },
                         next_offset: feed?.lowestUnfinished(lane: slot.lane) ?? -1, lag: feed?.unfinished(lane: slot.lane) ?? 0)
            }
            let next = feed?.nextOffset ?? -1
            let read = feed?.readPosition ?? -1
            return PartitionView(
                topic: partition.topic, partition: partition.partition,
                holder: state.slots[SlotKey(partition)]?.holder.map { workerIDs[$0] },
                committed: feed?.committedOffset ?? -1,
                next_offset: next,
                committable: feed?.committableOffset ?? -1,
                lag: facts.lag(partition), lanes: lanes, ahead: next >= 0 && read >= 0 ? read - next : 0)
        }
    }
}
