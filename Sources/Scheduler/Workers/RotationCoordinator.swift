import Foundation
import Logging

/// The shell around a group's `RotationState`: on its own `DedicatedThread`
/// it feeds the state the events (assignments, revocations, workers' slice
/// reports, refused commits, ticks, stop) and carries out its decisions
/// (start a lease on a worker's thread, renew, stop, commit, release revoked
/// partitions). The rules ask `rotate.lua` through `RotationPolicyHost`;
/// what the group looks like from outside is `GroupViewBuilder`'s.
final class RotationCoordinator: @unchecked Sendable {
    // Safe because every `var` below is read and written only on `thread`.
    let group: GroupConfig
    let logger: Logger
    let workers: [Worker]
    /// What the group's workers share (emit budget, commit gate): the
    /// coordinator reads and sets it for the whole group.
    let environment: WorkerEnvironment
    let consumer: KafkaConsumer
    let thread: DedicatedThread
    /// The group's `rotate.lua`.
    let rotate: RotationPolicyHost
    let catalog: ScriptCatalog
    /// The rules and everything they decide on.
    var state: RotationState
    var feeds: [TopicPartition: PartitionFeed] = [:]
    /// The leases the workers run, by id (the state's `LeaseRecord`s, with their controls).
    var running: [UInt64: Lease] = [:]
    /// Per-worker figures for `GET /groups` and the metrics.
    var activity: [WorkerActivity]
    private var idleWaiters: [@Sendable () -> Void] = []
    /// The feeds the rules named once every lease had ended after a stop:
    /// their final commit and queues come before the consumer closes.
    private(set) var quiesced: [PartitionFeed]?
    /// Per revocation ticket: the feeds it released, once they are (nil until then).
    private var revokeWaiters: [Int: WatchedValue<[PartitionFeed]?>] = [:]
    private var nextTicket = 0
    var gaps = GapRecorder()
    var history = LeaseHistory()

    /// Starts the coordinator's thread and loads `rotate.lua` from the
    /// catalog on it, if there is one. `cooperative`: the group uses an
    /// incremental assignor (see `RotationRules.cooperative`).
    static func start(group: GroupConfig, workers: [Worker], environment: WorkerEnvironment, catalog: ScriptCatalog, logger: Logger,
                      cooperative: Bool = false, sessionTimeoutMs: Int = 10_000) async throws -> RotationCoordinator {
        let coordinator = RotationCoordinator(group: group, workers: workers, environment: environment, catalog: catalog, logger: logger,
                                              cooperative: cooperative, sessionTimeoutMs: sessionTimeoutMs)
        do {
            try await coordinator.thread.run { [coordinator] in try coordinator.rotate.load(strict: true) }
        } catch {
            coordinator.thread.stop()
            throw error
        }
        return coordinator
    }

    private init(group: GroupConfig, workers: [Worker], environment: WorkerEnvironment, catalog: ScriptCatalog, logger: Logger,
                 cooperative: Bool, sessionTimeoutMs: Int) {
        self.group = group
        self.catalog = catalog
        self.workers = workers
        self.environment = environment
        self.consumer = environment.consumer
        self.logger = logger
        self.rotate = RotationPolicyHost(group: group.name, catalog: catalog, logger: logger)
        self.activity = workers.map { _ in WorkerActivity() }
        var rules = RotationRules(group: group.name, topics: group.topics, workers: workers.map(\.id), sliceMs: group.sliceMs)
        rules.cooperative = cooperative
        // A rebalance can take a session timeout (a dead member leaves) and a
        // join or two (the embedded broker holds each for a session timeout).
        rules.pauseGiveUp = max(rules.pauseGiveUp, .milliseconds(3 * sessionTimeoutMs))
        rules.holdBeforePause = .milliseconds(sessionTimeoutMs / 5)
        self.state = RotationState(rules: rules)
        // Present from the start (empty), so dashboards find the family.
        _ = environment.metrics.timer(MetricName.handoffGap, [("group", group.name)])
        self.thread = DedicatedThread(name: "coordinator-\(group.name)")
    }

    // MARK: Events (each runs on the coordinator's thread)

    /// Partitions this process was given by the group protocol.
    func assign(_ newFeeds: [PartitionFeed]) {
        thread.submit { [self] in
            for feed in newFeeds { feeds[feed.partition] = feed }
            // One slot per key lane: each is leased on its own.
            apply(.assigned(newFeeds.flatMap { feed in (0..<feed.lanes).map { SlotKey(feed.partition, lane: $0) } }))
        }
    }

    /// Ends the leases on `partitions` (every lane of each) at their next
    /// message boundary and blocks the caller (the consumer's poll thread,
    /// inside the rebalance callback) until none of them is being processed.
    /// Returns their feeds.
    func revokeAndWait(_ partitions: Set<TopicPartition>, lost: Bool = false, assignFailed: Bool = false) -> [PartitionFeed] {
        let released = WatchedValue<[PartitionFeed]?>(nil)
        thread.submit { [self] in
            nextTicket += 1
            revokeWaiters[nextTicket] = released
            let slots = partitions.flatMap { partition in (0..<(feeds[partition]?.lanes ?? group.lanes)).map { SlotKey(partition, lane: $0) } }
            apply(.revoking(Set(slots), ticket: nextTicket, lost: lost, assignFailed: assignFailed))
        }
        _ = released.waitBlocking(until: .distantFuture) { $0 != nil }
        return released.read { $0 ?? [] }
    }

    /// The labels of `partition`'s lag gauge.
    private func lagLabels(_ partition: TopicPartition) -> [(String, String)] {
        [("group", group.name), ("topic", partition.topic), ("partition", String(partition.partition))]
    }

    /// A worker reached a slice boundary (and goes on in overtime), or let go of its partition.
    func received(_ report: SliceReport) {
        thread.submit { [self] in handle(report) }
    }

    /// The broker refused an offset commit (`rebalance`: because the group is rebalancing).
    func commitRefused(rebalance: Bool) {
        thread.submit { [self] in apply(.commitRefused(rebalance: rebalance)) }
    }

    /// Periodic check for new work on idle partitions; refreshes the lag gauges.
    func tick() {
        thread.submit { [self] in
            apply(.tick)
            let metrics = environment.metrics
            // Per partition, not per lane: a lane label would multiply the
            // series by the lane count; lanes' lags are in GET /groups.
            for partition in feeds.keys {
                metrics.gauge(MetricName.lag, lagLabels(partition)).record(lag(partition))
            }
            metrics.gauge(MetricName.emitsInFlight, [("group", group.name)]).record(environment.emitBudget.current)
        }
    }

    /// Stops granting leases, ends the running ones at their next message
    /// boundary and returns when every worker is idle, or when `limit` has
    /// passed: then it returns who is still busy (worker ids, and the
    /// coordinator if its own thread, running rotate(), did not answer).
    func stopAll(within limit: Duration) async -> [String] {
        let idle = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let once = OneShot(continuation)
            once.resume(false, after: limit)
            thread.submit { [self] in
                idleWaiters.append { once.resume(true) }
                apply(.stop)
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
            rotate.finish()
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
    /// Throws once the coordinator's thread is stopped.
    func inspect<T: Sendable>(_ body: @escaping @Sendable (RotationCoordinator) -> T) async throws(DedicatedThreadStopped) -> T {
        try await thread.run { [self] in body(self) }
    }

    /// What the group looks like now, for `ctx` and `GET /groups`.
    var views: GroupViewBuilder {
        GroupViewBuilder(group: group, workerIDs: workers.map(\.id), activity: activity, facts: FeedFacts(feeds: feeds, consumer: consumer))
    }

    /// The group's state now (`GET /groups`).
    func snapshot() -> GroupView {
        views.snapshot(state: state, gaps: gaps, history: history, emitBudget: environment.emitBudget)
    }

    // MARK: Internals (coordinator thread only)

    private func handle(_ report: SliceReport) {
        let partition = report.lease.partition
        let index = report.lease.workerIndex
        activity[index].record(report)
        if let gap = report.handoffGap { gaps.record(gap) }
        history.record(.init(worker: index, partition: partition, start: report.startedAt, end: report.endedAt))
        recordMetrics(report)
        logger.debug(report.final ? "lease ended" : "slice boundary", metadata: [
            LogKey.group: "\(group.name)", LogKey.worker: "\(workers[index].id)",
            LogKey.topic: "\(partition.topic)", LogKey.partition: "\(partition.partition)",
            "reason": "\(report.reason.rawValue)", "messages": "\(report.messages)",
            "elapsed_ms": "\((report.endedAt - report.startedAt) / .milliseconds(1))",
            LogKey.offset: "\(report.nextOffset.map(String.init) ?? "-")",
        ])
        let event = LeaseReport(lease: report.lease.id, worker: index, slot: report.lease.slot, reason: report.reason,
                                final: report.final, endedAt: report.endedAt)
        apply(.report(event), asking: report)
        if report.final { running[report.lease.id] = nil }
    }

    /// Feeds `event` to the state and carries out its decisions. `asking`:
    /// the report `rotate(ctx)` is asked about, if the rules ask.
    private func apply(_ event: RotationEvent, asking report: SliceReport? = nil) {
        let facts = FeedFacts(feeds: feeds, consumer: consumer)
        let decisions: [RotationDecision]
        if let report, rotate.isActive {
            let views = views
            let policy = LuaRotationPolicy(host: rotate) { views.context(after: report, state: $0) }
            decisions = state.handle(event, at: .now, facts: facts, policy: policy)
        } else {
            decisions = state.handle(event, at: .now, facts: facts, policy: DefaultPolicy())
        }
        decisions.forEach(carryOut)
        environment.fetchedElsewhere.set(state.fetchedWaiting(facts: facts))
    }

    private func carryOut(_ decision: RotationDecision) {
        switch decision {
        case .grant(let grant):
            guard let feed = feeds[grant.slot.partition] else {
                logger.error("lease \(grant.id) granted on \(grant.slot) without a feed", metadata: [LogKey.group: "\(group.name)"])
                return
            }
            let lease = Lease(id: grant.id, slot: grant.slot, workerIndex: grant.worker, sliceMs: grant.sliceMs,
                              grantedAt: .now, predecessor: grant.handoffFrom.flatMap { running[$0]?.control })
            running[grant.id] = lease
            workers[grant.worker].begin(lease, feed: feed.lane(grant.slot.lane)) { [self] report in received(report) }
        case .renew(let id, let sliceMs):
            running[id]?.control.renew(sliceMs: sliceMs)
        case .stop(let id, let reason):
            running[id]?.control.requestStop(reason)
        case .commit(let positions):
            commitIdle(positions)
        case .resendCommits(let slots):
            for slot in slots { feeds[slot.partition]?.committedOffset = -1 }
        case .holdCommits(let held):
            environment.commits.hold(held)
        case .release(let ticket, let slots):
            // Every lane of a partition is in the same revocation.
            let released = Set(slots.map(\.partition)).sorted().compactMap { feeds.removeValue(forKey: $0) }
            for feed in released { environment.metrics.removeGauge(MetricName.lag, lagLabels(feed.partition)) }
            guard let waiter = revokeWaiters.removeValue(forKey: ticket) else { return }
            waiter.update { $0 = released }
        case .quiesced(let slots):
            // One feed per partition, however many lane slots it has (its
            // queue is destroyed once).
            quiesced = Set(slots.map(\.partition)).sorted().compactMap { feeds[$0] }
            let waiters = idleWaiters
            idleWaiters.removeAll()
            waiters.forEach { $0() }
        case .note(let note):
            log(note)
        }
    }
}
