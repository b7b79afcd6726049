import Logging
import ServiceLifecycle

/// Flushes and closes the producer on graceful shutdown, after the API and
/// the generator (which stop first) have handed it their last tasks.
struct ProducerService: Service {
    let producer: KafkaProducer
    let flushTimeoutMs: Int
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        let left = producer.outstandingCount
        logger.info("flushing producer", metadata: [LogKey.count: "\(left)"])
        await producer.close(timeoutMs: flushTimeoutMs)
    }
}
