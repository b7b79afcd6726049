import CRdKafka
import Logging

/// How this daemon's consumers take part in their consumer groups: the
/// session timeout, the assignor and (optionally) static membership. One
/// place, so the worker groups and the schedule consumer fail over alike.
public struct GroupMembership: Sendable, Equatable {
    /// `session.timeout.ms`: how long the group waits for a member that
    /// stopped heartbeating (a killed daemon) before moving its partitions.
    public var sessionTimeoutMs = 10_000
    /// Static membership (KIP-345) when not empty: each consumer's
    /// `group.instance.id` is `<instanceID>-<group id>`.
    public var instanceID = ""

    /// Dynamic membership, 10 s sessions.
    public init(sessionTimeoutMs: Int = 10_000, instanceID: String = "") {
        self.sessionTimeoutMs = sessionTimeoutMs
        self.instanceID = instanceID
    }

    /// The librdkafka properties of a consumer in `group`; `user`
    /// (`[kafka.properties]`) wins over each of them.
    public func properties(group: String, user: [String: String]) -> [String: String] {
        var properties = [
            "session.timeout.ms": "\(sessionTimeoutMs)",
            // 30 % of the session (3 s of 10 s): a lost heartbeat or two
            // does not end the session.
            "heartbeat.interval.ms": "\(max(100, sessionTimeoutMs * 3 / 10))",
            "partition.assignment.strategy": AssignorChoice.standard.strategy,
        ]
        if !instanceID.isEmpty { properties["group.instance.id"] = "\(instanceID)-\(group)" }
        return properties.merging(user) { _, user in user }
    }
}

/// Which partition assignor the group consumers use, and why: a rule on the
/// librdkafka version and the configured `partition.assignment.strategy`.
public struct AssignorChoice: Sendable, Equatable {
    /// The `partition.assignment.strategy` value.
    public let strategy: String
    /// Why, for the log.
    public let reason: String

    /// The first librdkafka that closes a cooperative-sticky consumer safely
    /// before its first assignment (PR #4381, in 2.3.0).
    static let fixedVersion: Int32 = 0x0203_0000

    /// The choice for `configured` (nil: not set in `[kafka.properties]`) on
    /// librdkafka `version` (`rd_kafka_version()`, 0xMMmmrrxx).
    public static func choose(configured: String?, version: Int32) -> AssignorChoice {
        // Cooperative unless configured: in the chaos run (docs/chaos.md) the
        // eager protocol stopped every partition at every rebalance and redid
        // more per stop. Where librdkafka has #4312, KafkaConsumer.close keeps
        // the handle of such a consumer closed before its first assignment.
        let strategy = configured ?? "cooperative-sticky"
        let why = configured == nil ? "incremental rebalancing: only the partitions that move stop" : "set in [kafka.properties]"
        let note = closeBeforeAssignmentAborts(strategy: strategy, version: version)
            ? "; librdkafka \(versionName(version)) aborts when such a consumer is closed before its first assignment (issue #4312, fixed in 2.3.0), so a consumer stopped that early leaves its group and keeps its handle until the process exits"
            : ""
        return AssignorChoice(strategy: strategy, reason: why + note)
    }

    /// True when closing a consumer with `strategy` before its first
    /// assignment aborts the process: librdkafka before 2.3.0 destroys the
    /// cooperative-sticky assignor's state without checking that a SyncGroup
    /// ever created it (rdkafka_cgrp.c, `rd_kafka_cgrp_destroy_final`).
    static func closeBeforeAssignmentAborts(strategy: String?, version: Int32) -> Bool {
        version < fixedVersion && (strategy ?? "").contains("cooperative-sticky")
    }

    /// `0x020002ff` as `2.0.2`.
    static func versionName(_ version: Int32) -> String {
        "\((version >> 24) & 0xff).\((version >> 16) & 0xff).\((version >> 8) & 0xff)"
    }

    /// The choice on the linked librdkafka when `[kafka.properties]` names none.
    public static let standard = choose(configured: nil, version: rd_kafka_version())

    private static let logged = LockedValue(false)

    /// Logs the choice for `properties` (`[kafka.properties]`) once per process.
    static func logOnce(properties: [String: String], logger: Logger) {
        guard logged.withLock({ done in
            defer { done = true }
            return !done
        }) else { return }
        let choice = choose(configured: properties["partition.assignment.strategy"], version: rd_kafka_version())
        logger.info("consumer groups use the \(choice.strategy) assignor: \(choice.reason)")
    }
}
