import CRdKafka
import Foundation

/// librdkafka's built-in mock Kafka cluster, run in this process.
///
/// It speaks the real Kafka protocol on loopback ports, so any client (kcat,
/// another daemon) can use it. It keeps everything in memory: topics vanish
/// when the process exits, and each partition keeps only its newest few MB.
/// It is for trying the scheduler out and for tests, not for production.
public final class EmbeddedBroker: @unchecked Sendable {
    // Safe because the mock cluster runs on its own librdkafka thread; its
    // API functions are thread-safe. `handle` only exists to own the cluster.
    private let handle: OpaquePointer
    /// The mock cluster; the test target's fault injection drives it.
    let cluster: OpaquePointer
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
