import CRdKafka
import Foundation

/// librdkafka's built-in mock Kafka cluster, run in this process.
///
/// It speaks the real Kafka protocol on loopback ports, so any client (kcat,
/// another daemon) can use it. It keeps everything in memory: topics vanish
/// when the process exits, and each partition keeps only its newest few MB.
/// It is for trying the scheduler out and for tests, not for production.
public final class EmbeddedBroker: @unchecked Sendable {
    // Threading rule: the mock cluster runs on its own librdkafka thread; its
    // API functions are thread-safe. `handle` only exists to own the cluster.
    private let handle: OpaquePointer
    private let cluster: OpaquePointer
    /// `host:port[,host:port]` of the mock brokers.
    public let bootstrapServers: String
    /// Number of brokers in the cluster.
    public let brokerCount: Int

    /// Starts a mock cluster of `brokers` brokers on ephemeral loopback ports.
    public static func start(brokers: Int = 1) throws -> EmbeddedBroker {
        // The mock cluster needs a client handle to hang off; a producer with
        // no bootstrap servers never connects anywhere by itself.
        let conf = try KafkaSettings.makeConf(["client.id": "task-scheduler-embedded-broker", "log_level": "3"])
        KafkaSettings.routeLogs(conf)
        let handle = try KafkaSettings.makeHandle(RD_KAFKA_PRODUCER, conf: conf)
        guard let cluster = rd_kafka_mock_cluster_new(handle, Int32(brokers)) else {
            rd_kafka_destroy(handle)
            throw KafkaError(code: -1, message: "could not start the embedded mock cluster")
        }
        return EmbeddedBroker(handle: handle, cluster: cluster, brokers: brokers)
    }

    private init(handle: OpaquePointer, cluster: OpaquePointer, brokers: Int) {
        self.handle = handle
        self.cluster = cluster
        self.brokerCount = brokers
        self.bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
    }

    /// Creates `topic` with `partitions` partitions. Creating a topic that
    /// exists already is not an error.
    public func createTopic(_ topic: String, partitions: Int) throws {
        let err = rd_kafka_mock_topic_create(cluster, topic, Int32(partitions), 1)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS {
            throw KafkaError(err, context: "create topic '\(topic)'")
        }
    }

    /// Takes broker `id` (1-based) down: its connections close and it refuses new ones.
    public func setBrokerDown(_ id: Int32) {
        _ = rd_kafka_mock_broker_set_down(cluster, id)
    }

    /// Brings broker `id` back up.
    public func setBrokerUp(_ id: Int32) {
        _ = rd_kafka_mock_broker_set_up(cluster, id)
    }

    /// Kafka protocol request types that faults can be injected into.
    public enum Request: Int16, Sendable, CaseIterable {
        case produce = 0, fetch = 1, offsetCommit = 8, joinGroup = 11, heartbeat = 12, syncGroup = 14
    }

    /// Makes the next `count` requests of `request` fail with Kafka error
    /// `code` (e.g. 6 NOT_LEADER_FOR_PARTITION, 7 REQUEST_TIMED_OUT,
    /// 15 COORDINATOR_NOT_AVAILABLE, 27 REBALANCE_IN_PROGRESS).
    public func failNext(_ request: Request, count: Int, code: Int32) {
        let errors = [rd_kafka_resp_err_t](repeating: rd_kafka_resp_err_t(rawValue: code), count: count)
        errors.withUnsafeBufferPointer { buffer in
            rd_kafka_mock_push_request_errors_array(cluster, request.rawValue, buffer.count, buffer.baseAddress)
        }
    }

    /// Delays every answer of broker `id` by `milliseconds` (a slow broker).
    public func setRoundTripTime(_ id: Int32, milliseconds: Int) {
        _ = rd_kafka_mock_broker_set_rtt(cluster, id, Int32(milliseconds))
    }

    /// Delays broker `id`'s answers to the next `count` requests of `request`
    /// by `milliseconds`, without failing them.
    public func delayNext(_ request: Request, count: Int, milliseconds: Int, broker id: Int32 = 1) {
        _ = crdkafka_mock_delay_requests(cluster, id, request.rawValue, count, Int32(milliseconds))
    }

    /// Moves the leadership of a partition to broker `broker` (1-based).
    public func setLeader(topic: String, partition: Int32, broker: Int32) {
        _ = rd_kafka_mock_partition_set_leader(cluster, topic, partition, broker)
    }

    /// Moves the group coordinator of `group` to broker `broker`.
    public func setGroupCoordinator(_ group: String, broker: Int32) {
        _ = rd_kafka_mock_coordinator_set(cluster, "group", group, broker)
    }

    private let stopped = LockedValue(false)

    /// Stops the brokers and discards every topic. Safe to call twice.
    public func shutdown() {
        let wasStopped = stopped.withLock { value in
            defer { value = true }
            return value
        }
        if wasStopped { return }
        rd_kafka_mock_cluster_destroy(cluster)
        rd_kafka_destroy(handle)
    }

    deinit {
        shutdown()
    }
}
