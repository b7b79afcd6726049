import Foundation
import Logging

/// Decides, at every slice boundary, which worker takes which partition
/// next, and hands partitions between the group's workers inside the process
/// (no Kafka rebalance per handoff).
///
/// Every piece of its state lives on its own `DedicatedThread`, together with
/// the `rotate.lua` state; workers report slice ends to it as jobs on that thread.
final class RotationCoordinator: @unchecked Sendable {
    // Threading rule: every `var` below is read and written only on `thread`.
    let group: GroupConfig
    let logger: Logger
    let workers: [Worker]
    let consumer: KafkaConsumer
    let thread: DedicatedThread
    var policy: LuaState?
    var policyGeneration = 0
    let catalog: ScriptCatalog
    var feeds: [TopicPartition: PartitionFeed] = [:]
    var slots: [TopicPartition: PartitionSlot] = [:]
    var activity: [WorkerActivity]
    var topicIndex = 0
    var hadTurn: Set<Int> = []
    var fillCursor = 0
    private var nextLeaseID: UInt64 = 1
    private var stopping = false
    /// A commit was refused because the group is rebalancing: no new leases
    /// until the group protocol assigns partitions again.
    private var rebalancing = false
    /// When `rebalancing` was set: cleared by the next assignment, or after
    /// `rebalanceGiveUp` if none comes (a member given nothing, or a refused
    /// commit not followed by a rebalance), so leases are never paused for good.
    private var rebalancingSince: ContinuousClock.Instant?
    static let rebalanceGiveUp = Duration.seconds(15)
    private var idleWaiters: [@Sendable () -> Void] = []
    private var revokeWaiters: [(partitions: Set<TopicPartition>, done: DispatchSemaphore)] = []
    var gaps = GapRecorder()
    var history = LeaseHistory()
    var lastCommitRetry = ContinuousClock.now
    /// Partitions promised to a worker once its current lease has ended.
    var pendingGrants: [Int: (partition: TopicPartition, sliceMs: Int)] = [:]

    /// Starts the coordinator's thread and loads `rotate.lua` from the
    /// catalog on it, if there is one.
    static func start(group: GroupConfig, workers: [Worker], consumer: KafkaConsumer, catalog: ScriptCatalog, logger: Logger) async throws -> RotationCoordinator {
        let coordinator = RotationCoordinator(group: group, workers: workers, consumer: consumer, catalog: catalog, logger: logger)
        do {
            try await coordinator.thread.run { [coordinator] in try coordinator.loadPolicy(strict: true) }
        } catch {
            coordinator.thread.stop()
            throw error
        }
        return coordinator
    }

    /// (Re)creates the `rotate.lua` state from the catalog, on the
    /// coordinator's thread. Not strict (a reload): a failure keeps the old state.
    func loadPolicy(strict: Bool) throws {
        policyGeneration = catalog.generation
        guard let source = catalog.source(ScriptCatalog.rotate) else {
            if policy?.finish() != nil { catalog.countError(script: ScriptCatalog.rotate, hook: "shutdown") }
            policy = nil
            return
        }
        if source.version == policy?.version { return }
        do {
            let bindings = ScriptBindings(script: source.path, worker: "\(group.name)-coordinator", group: group.name, logger: logger)
            let fresh = try LuaState.load(source: source, bindings: bindings, limits: catalog.limits)
            if policy?.finish() != nil { catalog.countError(script: ScriptCatalog.rotate, hook: "shutdown") }
            policy = fresh
            if !strict { logger.info("switched to rotate.lua version \(source.version)", metadata: [LogKey.group: "\(group.name)"]) }
        } catch {
            if strict { throw error }
            catalog.countError(script: ScriptCatalog.rotate, hook: "init")
            logger.error("could not switch rotate.lua, the old version stays: \(error)", metadata: [LogKey.group: "\(group.name)"])
        }
    }

    private init(group: GroupConfig, workers: [Worker], consumer: KafkaConsumer, catalog: ScriptCatalog, logger: Logger) {
        self.group = group
        self.catalog = catalog
        self.workers = workers
        self.consumer = consumer
        self.logger = logger
        self.activity = workers.map { _ in WorkerActivity() }
        // Present from the start (empty), so dashboards find the family.
        _ = catalog.metrics.timer(MetricName.handoffGap, [("group", group.name)])
        self.thread = DedicatedThread(name: "coordinator-\(group.name)")
    }

    // MARK: Events (each runs on the coordinator's thread)

    /// Partitions this process was given by the group protocol.
    func assign(_ newFeeds: [PartitionFeed]) {
        thread.submit { [self] in
            rebalancing = false
            rebalancingSince = nil
            for feed in newFeeds {
                feeds[feed.partition] = feed
                slots[feed.partition] = PartitionSlot()
            }
            logger.info("partitions assigned: \(newFeeds.map(\.partition.description).joined(separator: ", "))", metadata: [LogKey.group: "\(group.name)"])
            fill()
        }
    }

    /// Ends the leases on `partitions` at their next message boundary and
    /// blocks the caller (the consumer's poll thread, inside the rebalance
    /// callback) until none of them is being processed. Returns their feeds.
    func revokeAndWait(_ partitions: Set<TopicPartition>) -> [PartitionFeed] {
        let done = DispatchSemaphore(value: 0)
        let removed = LockedValue<[PartitionFeed]>([])
        thread.submit { [self] in
            removed.withLock { $0 = partitions.compactMap { feeds[$0] } }
            for partition in partitions { slots[partition]?.revoked = true }
            for entry in activity where entry.lease.map({ partitions.contains($0.partition) }) == true {
                entry.lease?.control.requestStop(.revoked)
            }
            revokeWaiters.append((partitions, done))
            settleRevocations()
        }
        done.wait()
        return removed.withLock { $0 }
    }

    /// A worker reached a slice boundary (and goes on in overtime), or let go of its partition.
    func received(_ report: SliceReport) {
        thread.submit { [self] in handle(report) }
    }

    /// Periodic check for new work on idle partitions; refreshes the lag gauges.
    func tick() {
        thread.submit { [self] in
            if rebalancing, let since = rebalancingSince, ContinuousClock.now - since > Self.rebalanceGiveUp {
                rebalancing = false
                rebalancingSince = nil
                logger.warning("no assignment came \(Self.rebalanceGiveUp) after a commit was refused for a rebalance; resuming leases", metadata: [LogKey.group: "\(group.name)"])
            }
            if mayGrant { fill() }
            retryIdleCommits()
            let metrics = catalog.metrics
            for partition in slots.keys {
                metrics.gauge(MetricName.lag, [("group", group.name), ("topic", partition.topic), ("partition", String(partition.partition))])
                    .record(lag(partition))
            }
        }
    }

    /// Ends every lease at its next message boundary and grants none until
    /// the next assignment: the group is rebalancing.
    func pauseForRebalance() {
        thread.submit { [self] in
            guard !rebalancing else { return }
            rebalancing = true
            rebalancingSince = .now
            logger.info("group is rebalancing: pausing leases", metadata: [LogKey.group: "\(group.name)"])
            for entry in activity { entry.lease?.control.requestStop(.revoked) }
        }
    }

    /// New leases may be granted (not stopping, not rebalancing).
    var mayGrant: Bool { !stopping && !rebalancing }

    /// Stops granting leases, ends the running ones at their next message
    /// boundary and returns when every worker is idle, or when `limit` has
    /// passed: then it returns who is still busy (worker ids, and the
    /// coordinator if its own thread, running rotate(), did not answer).
    func stopAll(within limit: Duration) async -> [String] {
        let idle = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let once = OneShot(continuation)
            DispatchQueue.global().asyncAfter(deadline: .now() + limit.seconds) { once.resume(false) }
            thread.submit { [self] in
                stopping = true
                for entry in activity { entry.lease?.control.requestStop(.shutdown) }
                idleWaiters.append { once.resume(true) }
                settleIdle()
            }
        }
        if idle { return [] }
        let answered = await thread.run(within: .milliseconds(100)) { true } ?? false
        return workers.filter(\.isRunningLease).map(\.id) + (answered ? [] : ["\(group.name)-coordinator"])
    }

    /// Drops the `rotate.lua` state and ends the thread.
    /// Returns false (leaving the thread) if that did not happen within `limit`.
    @discardableResult
    func close(within limit: Duration) async -> Bool {
        let closed = await thread.run(within: limit) { [self] () -> Bool in
            if policy?.finish() != nil { catalog.countError(script: ScriptCatalog.rotate, hook: "shutdown") }
            policy = nil
            return true
        } != nil
        if closed { thread.stop() }
        return closed
    }

    /// `inspect`, or nil if the thread did not answer within `limit`.
    func inspect<T: Sendable>(within limit: Duration, _ body: @escaping @Sendable (RotationCoordinator) -> T) async -> T? {
        await thread.run(within: limit) { [self] in body(self) }
    }

    /// Runs `body` on the coordinator's thread (for snapshots).
    func inspect<T: Sendable>(_ body: @escaping @Sendable (RotationCoordinator) -> T) async -> T {
        await thread.run { [self] in body(self) }
    }

    // MARK: Internals (coordinator thread only)

    private func handle(_ report: SliceReport) {
        let partition = report.lease.partition
        let index = report.lease.workerIndex
        activity[index].record(report)
        if let gap = report.handoffGap { gaps.record(gap) }
        history.record(.init(worker: index, partition: partition, start: report.startedAt, end: report.endedAt))
        recordMetrics(report)
        if report.final, var slot = slots[partition] {
            if slot.holder == index { slot.holder = nil }
            slot.lastEnd = report.endedAt
            slots[partition] = slot
        }
        logger.debug(report.final ? "lease ended" : "slice boundary", metadata: [
            LogKey.group: "\(group.name)", LogKey.worker: "\(workers[index].id)",
            LogKey.topic: "\(partition.topic)", LogKey.partition: "\(partition.partition)",
            "reason": "\(report.reason.rawValue)", "messages": "\(report.messages)",
            "elapsed_ms": "\((report.endedAt - report.startedAt) / .milliseconds(1))",
            LogKey.offset: "\(report.nextOffset.map(String.init) ?? "-")",
        ])
        if report.final, activity[index].lease?.id == report.lease.id { activity[index].lease = nil }
        if settleRevocations() || !mayGrant {
            settleIdle()
            return
        }
        if !report.final {
            decideAtBoundary(report)
        } else {
            if let pending = pendingGrants.removeValue(forKey: index) {
                grant(worker: index, partition: pending.partition, sliceMs: pending.sliceMs)
            }
            // A lease that ran dry ended without a boundary decision: ask now.
            if report.reason == .drained && slots[partition]?.holder == nil { rotate(after: report) }
        }
        fill()
    }

    /// Wakes revokers whose partitions are no longer held; true if any partition was removed.
    @discardableResult
    private func settleRevocations() -> Bool {
        var removedAny = false
        revokeWaiters.removeAll { waiter in
            let stillHeld = activity.contains { $0.lease.map { waiter.partitions.contains($0.partition) } == true }
            guard !stillHeld else { return false }
            for partition in waiter.partitions {
                feeds[partition] = nil
                slots[partition] = nil
            }
            removedAny = true
            waiter.done.signal()
            return true
        }
        return removedAny
    }

    private func settleIdle() {
        guard stopping, activity.allSatisfy({ $0.lease == nil }) else { return }
        let waiters = idleWaiters
        idleWaiters.removeAll()
        waiters.forEach { $0() }
    }

    /// Gives `partition` to idle worker `index` for `sliceMs`; with
    /// `handoffFrom`, the partition's current holder lets go as soon as the
    /// new worker runs (make-before-break).
    func grant(worker index: Int, partition: TopicPartition, sliceMs: Int, handoffFrom previous: Lease? = nil) {
        // Never a partition being revoked: the rebalance callback waits for it to be let go.
        guard let feed = feeds[partition], slots[partition]?.revoked == false, activity[index].lease == nil,
              slots[partition]?.holder == previous?.workerIndex else { return }
        let lease = Lease(id: nextLeaseID, partition: partition, workerIndex: index, sliceMs: sliceMs,
                          grantedAt: .now, predecessor: previous?.control)
        nextLeaseID += 1
        slots[partition]?.holder = index
        activity[index].lease = lease
        workers[index].begin(lease, feed: feed) { [self] report in received(report) }
    }
}
