/// Housekeeping beside the rotation itself: commit retries, metrics, and
/// messages that reached the consumer queue. All of it runs on the
/// coordinator's thread.
extension RotationCoordinator {
    /// A commit failed (not for a rebalance): every position is sent again,
    /// by the holding worker within its commit interval, or by `tick` for
    /// partitions nobody holds.
    func commitFailed() {
        thread.submit { [self] in
            for feed in feeds.values { feed.committedOffset = -1 }
        }
    }

    /// Commits the positions of partitions nobody holds that moved since
    /// their last successful commit (at most once a second).
    func retryIdleCommits() {
        guard ContinuousClock.now - lastCommitRetry >= .seconds(1) else { return }
        // Also where the last emits of a lease that ended get committed once acknowledged.
        let positions = feeds.values
            .filter { slots[$0.partition]?.holder == nil }
            .map { ($0, $0.committableOffset) }
            .filter { $0.1 >= 0 && $0.1 != $0.0.committedOffset }
        guard !positions.isEmpty else { return }
        lastCommitRetry = .now
        do {
            try consumer.commit(positions.map { PartitionOffset(topic: $0.0.partition.topic, partition: $0.0.partition.partition, offset: $0.1) }, async: true)
            for (feed, offset) in positions { feed.committedOffset = offset }
        } catch {
            logger.warning("commit retry failed: \(error)", metadata: [LogKey.group: "\(group.name)"])
        }
    }

    /// Adds one report's figures to the metrics (once per slice, not per message).
    func recordMetrics(_ report: SliceReport) {
        let metrics = catalog.metrics
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

    /// A message that reached the consumer queue instead of its partition
    /// queue: queue it on its feed so the lease holder processes it in order.
    func routeStray(_ message: KafkaRawMessage) {
        thread.submit { [self] in
            let partition = TopicPartition(topic: message.topic, partition: message.partition)
            if let feed = feeds[partition] {
                feed.addStray(message)
            } else {
                logger.warning("message for unassigned partition \(partition) dropped; it will be fetched again by its owner")
                message.destroy()
            }
        }
    }
}
