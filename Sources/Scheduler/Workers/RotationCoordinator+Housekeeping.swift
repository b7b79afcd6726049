import Logging

/// Housekeeping beside the rotation itself: idle commits, metrics, logs of
/// the rules' notes, and messages that reached the consumer queue. All of
/// it runs on the coordinator's thread.
extension RotationCoordinator {
    /// Messages waiting on `partition`: fetched and not processed, or known to
    /// be on the broker past the next offset.
    func lag(_ partition: TopicPartition) -> Int64 {
        FeedFacts(feeds: feeds, consumer: consumer).lag(partition)
    }

    /// Commits positions of slots nobody holds (the rules' `.commit`); the
    /// lanes of a partition share its position, sent once.
    func commitIdle(_ positions: [SlotOffset]) {
        for partition in Set(positions.map(\.slot.partition)).sorted() {
            guard let feed = feeds[partition] else { continue }
            do {
                try feed.commitIfMoved { next in
                    try consumer.commit([PartitionOffset(topic: partition.topic, partition: partition.partition, offset: next)], async: true)
                }
            } catch {
                logger.warning("commit retry failed: \(error)", metadata: [LogKey.group: "\(group.name)"])
            }
        }
    }

    /// Adds one report's figures to the metrics (once per slice, not per message).
    func recordMetrics(_ report: SliceReport) {
        let metrics = environment.metrics
        let topicLabels = [("group", group.name), ("topic", report.lease.partition.topic)]
        // Dead-lettered messages are handled but not processed.
        let processed = report.messages - report.deadLettered
        if processed > 0 { metrics.counter(MetricName.processed, topicLabels).increment(by: processed) }
        if report.errors > 0 { metrics.counter(MetricName.failed, topicLabels).increment(by: report.errors) }
        if report.deadLettered > 0 { metrics.counter(MetricName.deadLettered, topicLabels).increment(by: report.deadLettered) }
        let workerLabels = [("group", group.name), ("worker", workers[report.lease.workerIndex].id)]
        if !report.overtime { metrics.counter(MetricName.slices, workerLabels).increment() }
        if report.busy > .zero {
            metrics.floatingCounter(MetricName.busy, workerLabels).increment(by: Double(report.busy / .microseconds(1)) / 1e6)
        }
        if let gap = report.handoffGap { metrics.timer(MetricName.handoffGap, [("group", group.name)]).record(duration: gap) }
        metrics.luaCalls.merge(script: ScriptCatalog.process, hook: "process", report.luaCalls)
    }

    /// Logs what the rules noted.
    func log(_ note: RotationNote) {
        let metadata: Logger.Metadata = [LogKey.group: "\(group.name)"]
        switch note {
        case .assigned(let slots):
            // Partitions, not slots: with key lanes every partition brings `lanes` slots.
            let partitions = Set(slots.map(\.partition)).sorted().map(\.description).joined(separator: ", ")
            let lanes = group.lanes > 1 ? " (\(group.lanes) lanes each)" : ""
            logger.info("partitions assigned: \(partitions)\(lanes)", metadata: metadata)
        case .paused:
            logger.info("group is rebalancing: pausing leases and commits", metadata: metadata)
        case .commitsHeld:
            logger.info("group is rebalancing: commits wait for the next assignment", metadata: metadata)
        case .pauseGaveUp(let after):
            logger.warning("no assignment came \(after) after the group began rebalancing; resuming leases and commits", metadata: metadata)
        case .topicMoved(let topic):
            logger.debug("group moves to the next topic", metadata: metadata.merging([LogKey.topic: "\(topic)"]) { $1 })
        case .answerRejected(let message):
            let script = rotate.script
            logger.warning("rotate() answer not used, default policy applies: \(message)", metadata: metadata.merging([LogKey.script: "\(script)"]) { $1 })
        }
    }

    /// A message that reached the consumer queue instead of its partition
    /// queue: queue it on its feed so the lease holder processes it in order.
    func routeStray(_ message: consuming KafkaRawMessage) {
        // An escaping closure cannot capture a non-copyable value (Swift
        // 6.3): it travels in a batch's pointers, owned again at once.
        let stray = KafkaMessageBatch(message).release()
        thread.submit { [self] in
            let batch = KafkaMessageBatch(adopting: Array(stray))
            guard let first = batch.first else { return }
            let partition = TopicPartition(topic: first.topic, partition: first.partition)
            if let feed = feeds[partition] {
                feed.addStray(batch)
            } else {
                logger.warning("message for unassigned partition \(partition) dropped; it will be fetched again by its owner")
            }
        }
    }
}

/// The rules' facts, read from the partition feeds and the consumer's
/// watermarks (on the coordinator's thread).
struct FeedFacts: RotationFacts {
    let feeds: [TopicPartition: PartitionFeed]
    let consumer: KafkaConsumer

    func lag(_ partition: TopicPartition) -> Int64 {
        guard let feed = feeds[partition] else { return 0 }
        let ready = Int64(feed.readyCount)
        let next = feed.nextOffset
        guard next >= 0,
              let marks = consumer.watermarks(topic: partition.topic, partition: partition.partition), marks.high >= 0
        else { return ready }
        return max(ready, marks.high - next)
    }

    func hasWork(_ slot: SlotKey) -> Bool {
        // A failed emit is work too: the lane must be read again from it.
        guard let feed = feeds[slot.partition] else { return false }
        let position = feed.readPosition
        var unread = false
        if position >= 0, let marks = consumer.watermarks(topic: slot.topic, partition: slot.partition.partition) {
            unread = marks.high > position
        }
        return feed.hasWork(lane: slot.lane, unread: unread)
    }

    func hasFetched(_ slot: SlotKey) -> Bool {
        guard let feed = feeds[slot.partition] else { return false }
        return feed.readyCount(lane: slot.lane) > 0
    }

    func commitPosition(_ slot: SlotKey) -> (committable: Int64, committed: Int64) {
        guard let feed = feeds[slot.partition] else { return (-1, -1) }
        return (feed.committableOffset, feed.committedOffset)
    }
}
