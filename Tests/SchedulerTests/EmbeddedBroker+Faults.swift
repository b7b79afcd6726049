import CRdKafka
@testable import Scheduler

/// Fault injection into the embedded broker, for the tests only: brokers down
/// and up, request errors, slow answers, leader and coordinator moves.
extension EmbeddedBroker {
    /// Takes broker `id` (1-based) down: its connections close and it refuses new ones.
    func setBrokerDown(_ id: Int32) {
        _ = rd_kafka_mock_broker_set_down(cluster, id)
    }

    /// Brings broker `id` back up.
    func setBrokerUp(_ id: Int32) {
        _ = rd_kafka_mock_broker_set_up(cluster, id)
    }

    /// Kafka protocol request types that faults can be injected into.
    enum Request: Int16, Sendable, CaseIterable {
        case produce = 0, fetch = 1, offsetCommit = 8, joinGroup = 11, heartbeat = 12, syncGroup = 14
    }

    /// Makes the next `count` requests of `request` fail with Kafka error
    /// `code` (e.g. 6 NOT_LEADER_FOR_PARTITION, 7 REQUEST_TIMED_OUT,
    /// 15 COORDINATOR_NOT_AVAILABLE, 27 REBALANCE_IN_PROGRESS).
    func failNext(_ request: Request, count: Int, code: Int32) {
        let errors = [rd_kafka_resp_err_t](repeating: rd_kafka_resp_err_t(rawValue: code), count: count)
        errors.withUnsafeBufferPointer { buffer in
            rd_kafka_mock_push_request_errors_array(cluster, request.rawValue, buffer.count, buffer.baseAddress)
        }
    }

    /// Makes the next `count` requests of `request` to broker `broker` fail
    /// with Kafka error `code` (after any delays queued for that broker).
    func failNext(_ request: Request, count: Int, code: Int32, broker: Int32) {
        _ = crdkafka_mock_broker_fail_requests(cluster, broker, request.rawValue, count, rd_kafka_resp_err_t(rawValue: code))
    }

    /// Delays every answer of broker `id` by `milliseconds` (a slow broker).
    func setRoundTripTime(_ id: Int32, milliseconds: Int) {
        _ = rd_kafka_mock_broker_set_rtt(cluster, id, Int32(milliseconds))
    }

    /// Delays broker `id`'s answers to the next `count` requests of `request`
    /// by `milliseconds`, without failing them.
    func delayNext(_ request: Request, count: Int, milliseconds: Int, broker id: Int32 = 1) {
        _ = crdkafka_mock_delay_requests(cluster, id, request.rawValue, count, Int32(milliseconds))
    }

    /// Moves the leadership of a partition to broker `broker` (1-based).
    func setLeader(topic: String, partition: Int32, broker: Int32) {
        _ = rd_kafka_mock_partition_set_leader(cluster, topic, partition, broker)
    }

    /// Moves the group coordinator of `group` to broker `broker`.
    func setGroupCoordinator(_ group: String, broker: Int32) {
        _ = rd_kafka_mock_coordinator_set(cluster, "group", group, broker)
    }
}
