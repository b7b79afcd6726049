import Foundation
import Logging
import ServiceLifecycle

/// One configured group: a Kafka consumer in the group (the group protocol
/// only splits partitions between processes), a pool of workers and the
/// coordinator that rotates partitions between them.
public final class GroupRuntime: Service, Sendable {
    let group: GroupConfig
    let logger: Logger
    let consumer: KafkaConsumer
    let coordinator: RotationCoordinator
    let workers: [Worker]
    /// How long shutdown waits for the leases to end, then for the states to close.
    let grace: ShutdownGrace
    /// Set once by `startConsuming`, read by `shutdown`.
    private let pollLoop = LockedValue<KafkaPollLoop?>(nil)
    private let started = LockedValue(false)
    /// Assignments received (rebalance callbacks), so a final commit refused
    /// during a rebalance can wait for the group's next generation.
    private let assignments: WatchedValue<Int>
    /// Closed while the group rebalances (the rotation state holds commits).
    private let commits: CommitGate
    /// Longest a stopping daemon waits for a rebalance to end before it
    /// gives up on its final commit: a session timeout (a dead member leaves)
    /// plus a join (on the embedded broker about as long again).
    let settleWait: Duration

    /// Creates the consumer, the workers (each loading `process.lua`, so a
    /// broken script fails here with its error) and the coordinator (loading
    /// `rotate.lua` if present). Nothing consumes yet: `run()` (or
    /// `startConsuming()`) joins the group.
    public static func make(
        group: GroupConfig, bootstrapServers: String, properties: [String: String], membership: GroupMembership = GroupMembership(),
        publisher: TaskPublisher, catalog: ScriptCatalog, metrics: SchedulerMetrics = SchedulerMetrics(), logger: Logger,
        grace: ShutdownGrace? = nil
    ) async throws -> GroupRuntime {
        let grace = grace ?? ShutdownGrace(maxCallMs: catalog.limits.maxCallMs, producerTimeoutMs: 5000)
        // The rebalance callbacks need the consumer and coordinator made below.
        let wired = LockedValue<(KafkaConsumer, RotationCoordinator)?>(nil)
        let emitBudget = EmitBudget(limit: group.maxInflightEmits, byteLimit: group.maxInflightEmitMB * 1024 * 1024)
        let assignments = WatchedValue(0)
        AssignorChoice.logOnce(properties: properties, logger: logger)
        let settings = ConsumerSettings(group: group, membership: membership, user: properties)
        let consumer = try KafkaConsumer.make(
            bootstrapServers: bootstrapServers, groupID: group.name, properties: settings.properties,
            rebalance: rebalanceHandler(group: group, wired: wired, emitBudget: emitBudget, assignments: assignments, logger: logger))
        let commits = CommitGate()
        let environment = WorkerEnvironment(group: group, publisher: publisher, consumer: consumer, catalog: catalog, metrics: metrics,
                                            logger: logger, emitBudget: emitBudget, commits: commits, fetchedElsewhere: FetchedElsewhere())
        var workers: [Worker] = []
        let coordinator: RotationCoordinator
        do {
            for index in 0..<group.workers {
                workers.append(try await Worker.start(index: index, environment: environment))
            }
            coordinator = try await RotationCoordinator.start(group: group, workers: workers, environment: environment, catalog: catalog, logger: logger,
                                                              cooperative: settings.cooperative, sessionTimeoutMs: settings.sessionTimeoutMs)
        } catch {
            // Whatever was made so far: the workers started, then the consumer.
            for worker in workers { await worker.close() }
            await closeOffThePool(consumer, group: group.name)
            throw error
        }
        wired.withLock { $0 = (consumer, coordinator) }
        return GroupRuntime(group: group, logger: logger, consumer: consumer, coordinator: coordinator, workers: workers, grace: grace,
                            assignments: assignments, commits: commits, settleWait: .milliseconds(2 * settings.sessionTimeoutMs))
    }

    /// Closes a consumer that never joined (a failed start) on a thread of
    /// its own: the close blocks, never on the concurrency pool.
    private static func closeOffThePool(_ consumer: KafkaConsumer, group: String) async {
        let closer = DedicatedThread(name: "close-\(group)")
        try? await closer.run { consumer.close() }  // a fresh thread: never stopped yet
        closer.stop()
    }

    /// The group consumer's properties and what the group reads from them.
    private struct ConsumerSettings {
        var properties: [String: String]
        var cooperative: Bool
        var sessionTimeoutMs: Int

        /// Session timeout, assignor and static membership: `membership`
        /// (the same for the schedule consumer); [kafka.properties] (`user`)
        /// overrides. Prefetch is bounded (librdkafka CONFIGURATION.md:
        /// queued.max.messages.kbytes caps each partition's fetch queue), so a
        /// slow process() with a fast producer keeps memory flat: the fetcher
        /// simply waits.
        init(group: GroupConfig, membership: GroupMembership, user: [String: String]) {
            properties = membership.properties(group: group.name, user: [
                "queued.max.messages.kbytes": "16384", "fetch.max.bytes": "8388608",
            ].merging(user) { _, user in user })
            cooperative = properties["partition.assignment.strategy"]?.contains("cooperative") == true
            sessionTimeoutMs = properties["session.timeout.ms"].flatMap { Int($0) } ?? 10_000
            properties["enable.partition.eof"] = "false"
        }
    }

    /// The rebalance callbacks: an assignment makes the partitions' feeds, a
    /// revocation takes them back and commits them, a refused commit is
    /// sent again. They do nothing until the group is `wired`.
    private static func rebalanceHandler(
        group: GroupConfig, wired: LockedValue<(KafkaConsumer, RotationCoordinator)?>, emitBudget: EmitBudget,
        assignments: WatchedValue<Int>, logger: Logger
    ) -> RebalanceHandler {
        RebalanceHandler(
            assigned: { partitions in
                defer { assignments.update { $0 += 1 } }
                guard let (consumer, coordinator) = wired.withLock({ $0 }) else { return }
                let feeds = partitions.compactMap { assigned -> PartitionFeed? in
                    guard let queue = consumer.partitionQueue(topic: assigned.topic, partition: assigned.partition) else { return nil }
                    return PartitionFeed(partition: TopicPartition(topic: assigned.topic, partition: assigned.partition), queue: queue, budget: emitBudget,
                                         lanes: group.lanes, maxAhead: group.laneMaxAhead)
                }
                coordinator.assign(feeds)
            },
            revoking: { partitions, cause in
                guard let (consumer, coordinator) = wired.withLock({ $0 }) else { return }
                let feeds = coordinator.revokeAndWait(Set(partitions.map { TopicPartition(topic: $0.topic, partition: $0.partition) }),
                                                      lost: cause.isLost, assignFailed: cause == .assignFailed)
                GroupRuntime.commitFinal(feeds, consumer: consumer, logger: logger, group: group.name)
                feeds.forEach { $0.discardBacklog() }
                // Lost: the group went on without this member (its session
                // expired), so the final commit may be refused and the next owner
                // processes again what came after the last accepted one.
                let why = switch cause { case .givenUp: ""; case .lost: " (assignment lost)"; case .assignFailed: " (their assign call failed)" }
                logger.info("partitions revoked\(why): \(feeds.map(\.partition.description).joined(separator: ", "))", metadata: [LogKey.group: "\(group.name)"])
            },
            commitFailed: { error in
                guard let (_, coordinator) = wired.withLock({ $0 }) else { return }
                if !error.isRebalance {
                    logger.warning("offset commit failed, will retry: \(error)", metadata: [LogKey.group: "\(group.name)"])
                }
                // The refused positions are sent again; for a rebalance under
                // the eager protocol the leases also pause (RotationState).
                coordinator.commitRefused(rebalance: error.isRebalance)
            },
            logger: { var tagged = logger; tagged[metadataKey: LogKey.group] = "\(group.name)"; return tagged }())
    }

    /// Joins the group: subscribes to the group's topics and starts the
    /// thread that serves the consumer queue (rebalances). Once; later calls
    /// do nothing.
    public func startConsuming() throws {
        guard started.withLock({ value in
            defer { value = true }
            return !value
        }) else { return }
        try consumer.subscribe(group.topics)
        pollLoop.withLock { $0 = KafkaPollLoop(name: "group-\(group.name)") { [self] in pollOnce() } }
    }

    /// The group consumers' assignor unless [kafka.properties] names one:
    /// cooperative-sticky (incremental rebalancing: when a daemon joins or
    /// leaves only the partitions that move stop; `AssignorChoice`).
    public static var defaultAssignmentStrategy: String { AssignorChoice.standard.strategy }

    private init(group: GroupConfig, logger: Logger, consumer: KafkaConsumer, coordinator: RotationCoordinator, workers: [Worker], grace: ShutdownGrace,
                 assignments: WatchedValue<Int>, commits: CommitGate, settleWait: Duration) {
        self.grace = grace
        self.assignments = assignments
        self.commits = commits
        self.settleWait = settleWait
        self.group = group
        self.logger = logger
        self.consumer = consumer
        self.coordinator = coordinator
        self.workers = workers
    }

    /// Serves the consumer queue (rebalances, errors; rarely a message that
    /// reached it instead of its partition queue) and nudges the coordinator.
    private func pollOnce() {
        if let message = consumer.pollRaw(timeoutMs: 50) {
            if let error = message.error {
                logger.warning("consumer: \(error)", metadata: [LogKey.group: "\(group.name)"])
            } else {
                coordinator.routeStray(message)
            }
        }
        coordinator.tick()
    }

    /// Runs until graceful shutdown, then stops the group in order: no new
    /// leases, in-flight messages finish, offsets committed, group left.
    /// A failed start stops what was made (workers, coordinator, consumer).
    public func run() async throws {
        do {
            try startConsuming()
        } catch {
            logger.error("group could not subscribe to \(group.topics.joined(separator: ", ")): \(error)", metadata: [LogKey.group: "\(group.name)"])
            await shutdown()
            throw error
        }
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Stops processing, commits, leaves the group and frees everything.
    /// Bounded: every script call ends within its budget, and a worker (or
    /// the coordinator) still busy after `grace.stop` is logged by name and
    /// left behind, so the daemon can exit.
    public func shutdown() async {
        let stuck = await coordinator.stopAll(within: grace.stop)
        if !stuck.isEmpty {
            logger.error("\(stuck.joined(separator: ", ")) did not stop within \(grace.stop); stopping without them (their messages in flight are not committed and will be processed again)",
                         metadata: [LogKey.group: "\(group.name)", LogKey.worker: "\(stuck.joined(separator: ","))"])
        }
        // What the rules named when the last lease ended (every feed, if a worker is stuck).
        let feeds = await coordinator.inspect(within: .seconds(1)) { $0.quiesced ?? Array($0.feeds.values) } ?? []
        // The final commit, stopping the poll thread and leaving the group
        // block: they run on a thread of their own, not on the concurrency pool.
        // Leaving the group runs the revoke callback there; nothing is held any more.
        let closer = DedicatedThread(name: "close-\(group.name)")
        try? await closer.run { [self] in  // a fresh thread: never stopped yet
            commitFinalAfterRebalance(feeds)
            pollLoop.withLock { $0 }?.stop()
        }
        // An assignment that came while the final commit waited for the
        // rebalance made feeds of its own (nothing processed on them).
        let late = await coordinator.inspect(within: .seconds(1)) { Array($0.feeds.values) } ?? []
        let all = feeds + late.filter { feed in !feeds.contains { $0 === feed } }
        try? await closer.run { [self] in  // not stopped until below
            // A worker left behind may still use the consumer when its call
            // returns: keep it open (the group's session expires instead).
            // librdkafka's order (INTRODUCTION.md, "Termination"): partition
            // queues are destroyed before the consumer is closed.
            if stuck.isEmpty {
                all.forEach { $0.queue.destroy() }
                consumer.close()
            }
        }
        closer.stop()
        // Each state's shutdown() has its own budget: close them side by side.
        let closeGrace = grace.close
        let unclosed = await withTaskGroup(of: String?.self) { tasks in
            for worker in workers where !stuck.contains(worker.id) {
                tasks.addTask { await worker.close(within: closeGrace) ? nil : worker.id }
            }
            let coordinatorName = "\(group.name)-coordinator"
            if !stuck.contains(coordinatorName) {
                tasks.addTask { [coordinator] in await coordinator.close(within: closeGrace) ? nil : coordinatorName }
            }
            var names: [String] = []
            for await name in tasks { if let name { names.append(name) } }
            return names.sorted()
        }
        if !unclosed.isEmpty {
            logger.error("\(unclosed.joined(separator: ", ")) did not close within \(closeGrace); left behind",
                         metadata: [LogKey.group: "\(group.name)", LogKey.worker: "\(unclosed.joined(separator: ","))"])
        }
        logger.info("group stopped", metadata: [LogKey.group: "\(group.name)"])
    }

    /// The final commit at shutdown. One refused because the group is
    /// rebalancing (another daemon joined or left a moment ago) would make the
    /// next owner redo everything since the last accepted commit: the member
    /// is still in the group, so it waits (signalled by the next assignment,
    /// at most `settleWait`) and commits again with the new generation. The
    /// poll thread keeps serving the rebalance meanwhile. While commits are
    /// held the rebalance is known to be under way (a commit sent then is
    /// answered with the generation it replaces, which librdkafka takes as the
    /// loss of every partition), so it waits before the first try.
    private func commitFinalAfterRebalance(_ feeds: [PartitionFeed]) {
        let seen = assignments.read { $0 }
        if commits.isOpen {
            guard let error = GroupRuntime.commitFinal(feeds, consumer: consumer, logger: logger, group: group.name, warnOnRebalance: false),
                  error.isRebalance else { return }
            logger.info("final commit refused during a rebalance (\(error)); committing again once the group has settled (at most \(settleWait))",
                        metadata: [LogKey.group: "\(group.name)"])
        } else {
            logger.info("the group is rebalancing; the final commit waits until it has settled (at most \(settleWait))",
                        metadata: [LogKey.group: "\(group.name)"])
        }
        let deadline = Date(timeIntervalSinceNow: settleWait.seconds)
        guard assignments.waitBlocking(until: deadline, { $0 > seen }) else {
            logger.warning("the group did not settle within \(settleWait); the next owner may process some messages again",
                           metadata: [LogKey.group: "\(group.name)"])
            return
        }
        if GroupRuntime.commitFinal(feeds, consumer: consumer, logger: logger, group: group.name) == nil {
            logger.info("final commit made after the rebalance", metadata: [LogKey.group: "\(group.name)"])
        }
    }

    /// The group's state for `GET /groups`; nil once the group has stopped.
    public func snapshot() async -> GroupView? {
        try? await coordinator.inspect { $0.snapshot() }
    }

    /// Synchronously commits the next offset of every feed that moved; the
    /// error if the commit was refused.
    @discardableResult
    static func commitFinal(_ feeds: [PartitionFeed], consumer: KafkaConsumer, logger: Logger, group: String,
                            settleWithin: Duration = .seconds(5), warnOnRebalance: Bool = true) -> KafkaError? {
        // Emits still in flight hold their messages' offsets back: give them
        // a bounded time to be acknowledged so the commit covers them.
        let deadline = ContinuousClock.now + settleWithin
        for feed in feeds where !feed.waitEmitsSettled(until: deadline) {
            logger.warning("\(feed.pendingEmits) emits of \(feed.partition) not acknowledged in time; their messages will be processed again by the next owner", metadata: [LogKey.group: "\(group)"])
        }
        let positions = feeds.map { ($0, $0.committableOffset) }.filter { $0.1 >= 0 }
        let offsets = positions.map { PartitionOffset(topic: $0.0.partition.topic, partition: $0.0.partition.partition, offset: $0.1) }
        guard !offsets.isEmpty else { return nil }
        do {
            try consumer.commit(offsets, async: false)
            for (feed, offset) in positions { feed.committedOffset = offset }
            return nil
        } catch {
            let error = error as? KafkaError ?? KafkaError(code: -1, message: "\(error)")
            // The next owner resumes from the last commit that succeeded, so
            // messages since then may be processed again (at-least-once).
            if warnOnRebalance || !error.isRebalance {
                logger.warning("final commit failed, the next owner may process some messages again: \(error)", metadata: [LogKey.group: "\(group)"])
            }
            return error
        }
    }
}

/// How long a group's shutdown waits, derived from the budgets: a lease ends
/// after its message in flight (one call, then the acknowledgement of what it
/// emitted or of its dead letter); a state closes after its `shutdown()`.
public struct ShutdownGrace: Sendable {
    /// For every lease to end.
    public var stop: Duration
    /// For the states to close (in parallel).
    public var close: Duration

    /// `stop` = max_call_ms + producer timeout_ms + 1 s; `close` = max_call_ms + 1 s.
    public init(maxCallMs: Int, producerTimeoutMs: Int) {
        stop = .milliseconds(maxCallMs + producerTimeoutMs + 1000)
        close = .milliseconds(maxCallMs + 1000)
    }

    /// Explicit durations (tests).
    public init(stop: Duration, close: Duration) {
        self.stop = stop
        self.close = close
    }
}
