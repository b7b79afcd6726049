import CRdKafka
import Foundation
import Logging

/// Elects the one daemon that runs `generate()` ticks for a pool topic: a
/// consumer in the group `<pool topic>.publisher`, subscribed to the pool
/// topic, on a dedicated thread. The member assigned its partition 0 is the
/// publisher; when it leaves (graceful stop) or its session expires (it
/// died), the group gives the partition to another member, which takes over
/// after the session timeout plus a join. The election consumer reads
/// nothing itself (the follower does): what it fetches is dropped.
final class PoolElection: @unchecked Sendable {
    // Safe because the consumer is created, polled and closed on the
    // election thread only, and `pendingElection` used there only (also by
    // the rebalance callbacks, which run on it).
    let role = WatchedValue(PublisherRole())
    let topic: String
    let group: String
    private let bootstrapServers: String
    private let properties: [String: String]
    private let logger: Logger
    private let loop = RetryLoop(name: "pool-election")
    private var pendingElection = false
    /// Longest a revoke waits for the tick in progress.
    static let revokeWaitMs = 10_000

    /// The publishers' group of a pool topic.
    static func group(of poolTopic: String) -> String { "\(poolTopic).publisher" }

    init(topic: String, bootstrapServers: String, properties: [String: String], membership: GroupMembership = GroupMembership(), logger: Logger) {
        self.topic = topic
        self.group = Self.group(of: topic)
        self.bootstrapServers = bootstrapServers
        self.properties = membership.properties(group: Self.group(of: topic), user: properties)
        self.logger = logger
    }

    private var isRunning: Bool { loop.isRunning }

    /// Starts the election thread; it retries every second while the brokers do not answer.
    func start() {
        let (logger, group, role) = (logger, group, role)
        loop.start({ [self] in try elect() }, onFailure: { error in
            logger.warning("pool publisher election failed, retrying in 1 s: \(error)", metadata: [LogKey.group: "\(group)"])
        }, onExit: { role.update { $0.resign() } })
    }

    /// Leaves the group (after the tick in progress) and ends the thread, so
    /// another daemon takes over after a join. Blocking.
    func stop() {
        loop.stop()
    }

    private func elect() throws {
        let handler = RebalanceHandler(
            assigned: { [self] partitions in
                if partitions.contains(where: { $0.topic == topic && $0.partition == PoolRecord.partition }) {
                    pendingElection = true
                } else {
                    logger.info("joined the pool publishers' group; another daemon publishes", metadata: [LogKey.group: "\(group)"])
                }
            },
            revoking: { [self] partitions, _ in
                guard partitions.contains(where: { $0.topic == topic && $0.partition == PoolRecord.partition }) else { return }
                pendingElection = false
                resign()
            })
        // Range, not cooperative-sticky: one partition gains nothing from
        // incremental rebalancing, and librdkafka before 2.3.0 aborts when a
        // cooperative-sticky consumer is closed before its first assignment
        // (issue #4312). Session timeout and static membership as the worker
        // groups' (`GroupMembership`).
        var settings = properties
        settings["partition.assignment.strategy"] = "range"
        settings["enable.partition.eof"] = "false"
        settings["auto.offset.reset"] = "latest"
        let consumer = try KafkaConsumer.make(bootstrapServers: bootstrapServers, groupID: group, properties: settings, rebalance: handler)
        defer {
            // Leaving the group revokes (after the tick in progress): the next publisher starts at once.
            consumer.close()
            pendingElection = false
            resign()
        }
        try consumer.subscribe([topic])
        while isRunning {
            if pendingElection { takeOffice(consumer) }
            // Records fetched for the assigned partition are not needed here.
            _ = consumer.pollRaw(timeoutMs: 100)  // destroyed at once
        }
    }

    /// Becomes the publisher once the pool topic's end is known (the
    /// generator first reads up to it, so it knows the last tick).
    private func takeOffice(_ consumer: KafkaConsumer) {
        do {
            let end = try PoolFollower.end(of: topic, consumer: consumer, timeoutMs: 5000)
            pendingElection = false
            role.update { $0.elect(end: end) }
            logger.notice("this daemon is now the task pool's publisher", metadata: [LogKey.group: "\(group)", LogKey.topic: "\(topic)"])
        } catch {
            logger.warning("elected the pool's publisher, but the pool topic's end is unknown; retrying: \(error)",
                           metadata: [LogKey.group: "\(group)"])
        }
    }

    /// Stops publishing: waits (bounded) for the tick in progress to finish
    /// and write its tick record, so the next publisher continues after it.
    private func resign() {
        let was = role.update { role -> Bool in
            defer { role.resign() }
            return role.isPublisher
        }
        guard was else { return }
        let deadline = Date(timeIntervalSinceNow: Double(Self.revokeWaitMs) / 1000)
        if !role.waitBlocking(until: deadline, { !$0.ticking }) {
            logger.warning("gave up the pool's publisher role while a tick was still publishing (the next publisher redoes it)",
                           metadata: [LogKey.group: "\(group)"])
        }
        logger.notice("this daemon is no longer the task pool's publisher", metadata: [LogKey.group: "\(group)"])
    }
}
