import CRdKafka
import Logging

/// Receives the consumer group's partition assignments and revocations
/// (librdkafka's rebalance callback, run on the thread that polls the
/// consumer queue).
///
/// `assigned` runs before the partitions are assigned, so their queues can be
/// detached before the first fetch; `revoking` runs before they are given up
/// and must not return until nothing of them is being processed and their
/// offsets are committed (INTRODUCTION.md, "Consumer groups").
/// Why partitions leave this member.
public enum RevokeCause: Sendable, Equatable {
    /// Given up in a rebalance: a final commit is accepted.
    case givenUp
    /// Lost: the member's generation is gone, so no commit is accepted.
    case lost
    /// Never really assigned: librdkafka refused the assign call after the
    /// feeds were made. Nothing was read, and no rebalance follows.
    case assignFailed

    /// No commit of them will be accepted.
    public var isLost: Bool { self != .givenUp }
}

public final class RebalanceHandler: Sendable {
    // Called only on the thread that polls the consumer queue (or closes the
    // consumer); `assignedOnce` is read by the closing thread.
    let assigned: @Sendable ([PartitionOffset]) -> Void
    /// The partitions, and why they go (`RevokeCause`).
    let revoking: @Sendable ([PartitionOffset], RevokeCause) -> Void
    let commitFailed: @Sendable (KafkaError) -> Void
    /// Where failed assignment calls are reported (the group's logger).
    let logger: Logger
    private let assignedOnce = LockedValue(false)

    /// An assignment (even an empty one) was received: the group's SyncGroup
    /// completed at least once, so the assignor's state exists.
    var hasBeenAssigned: Bool { assignedOnce.withLock { $0 } }

    /// Creates a handler. `commitFailed` receives the errors of offset commits
    /// (librdkafka's offset_commit_cb), e.g. "rebalance in progress".
    public init(assigned: @escaping @Sendable ([PartitionOffset]) -> Void,
                revoking: @escaping @Sendable ([PartitionOffset], RevokeCause) -> Void,
                commitFailed: @escaping @Sendable (KafkaError) -> Void = { _ in }, logger: Logger? = nil) {
        self.logger = logger ?? KafkaLog.logger
        self.assigned = assigned
        self.revoking = revoking
        self.commitFailed = commitFailed
    }

    func committed(err: rd_kafka_resp_err_t) {
        // _NO_OFFSET: nothing was stored to commit; not a failure.
        if err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET { commitFailed(KafkaError(err)) }
    }

    func handle(rk: OpaquePointer, err: rd_kafka_resp_err_t, partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) {
        let list = partitions.map(KafkaConsumer.readList) ?? []
        let cooperative = String(cString: rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE"
        switch err {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            assignedOnce.withLock { $0 = true }
            assigned(list)
            let failure = Self.injected(\.assign, list)
                ?? (cooperative ? Self.take(rd_kafka_incremental_assign(rk, partitions)) : Self.check(rd_kafka_assign(rk, partitions)))
            if let error = failure {
                // The feeds made for them would wait on partitions nobody
                // fetches: drop them as lost (nothing committed); the group
                // assigns the partitions again at its next rebalance.
                logger.error("assigning \(Self.names(list)) failed: \(error); they are dropped as lost, uncommitted")
                revoking(list, .assignFailed)
            }
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            revoking(list, rd_kafka_assignment_lost(rk) != 0 ? .lost : .givenUp)
            unassign(rk, partitions, list, cooperative: cooperative)
        default:
            logger.error("rebalance failed: \(KafkaError(err))")
            revoking(list, .lost)
            unassign(rk, nil, list, cooperative: false)
        }
    }

    /// Gives up `partitions` (nil: all). Their feeds are gone already, so a
    /// refusal is retried once, then named in the log: librdkafka would keep
    /// fetching partitions nobody reads until the next rebalance.
    private func unassign(_ rk: OpaquePointer, _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
                          _ list: [PartitionOffset], cooperative: Bool) {
        func attempt() -> KafkaError? {
            Self.injected(\.unassign, list)
                ?? (cooperative ? Self.take(rd_kafka_incremental_unassign(rk, partitions)) : Self.check(rd_kafka_assign(rk, nil)))
        }
        guard let first = attempt() else { return }
        logger.warning("giving up \(Self.names(list)) failed: \(first); trying again")
        if let error = attempt() {
            logger.error("giving up \(Self.names(list)) failed twice: \(error); they stay assigned until the next rebalance")
        }
    }

    /// Test seam: failures to inject into this process's assignment calls,
    /// by topic. A call on a list holding the topic fails, without reaching
    /// librdkafka, while its count lasts (so an injected unassign failure
    /// leaves the partitions assigned, as a real one would). Empty in
    /// production: one dictionary lookup per rebalance.
    struct InjectedFailures: Sendable {
        var assign = 0
        var unassign = 0
    }
    static let injectedFailures = LockedValue<[String: InjectedFailures]>([:])

    private static func injected(_ call: WritableKeyPath<InjectedFailures, Int>, _ list: [PartitionOffset]) -> KafkaError? {
        injectedFailures.withLock { faults -> KafkaError? in
            guard !faults.isEmpty, let topic = list.first(where: { (faults[$0.topic]?[keyPath: call] ?? 0) > 0 })?.topic else { return nil }
            faults[topic]![keyPath: call] -= 1
            return KafkaError(code: RD_KAFKA_RESP_ERR__STATE.rawValue, message: "injected failure (test seam)")
        }
    }

    /// An `rd_kafka_error_t` as a `KafkaError` (destroying it), nil for success.
    private static func take(_ error: OpaquePointer?) -> KafkaError? {
        guard let error else { return nil }
        defer { rd_kafka_error_destroy(error) }
        return KafkaError(code: rd_kafka_error_code(error).rawValue, message: String(cString: rd_kafka_error_string(error)))
    }

    private static func check(_ err: rd_kafka_resp_err_t) -> KafkaError? {
        err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(err)
    }

    private static func names(_ list: [PartitionOffset]) -> String {
        list.isEmpty ? "every partition" : list.map { "\($0.topic)[\($0.partition)]" }.joined(separator: ", ")
    }
}
