import Logging
import ServiceLifecycle

/// Keeps the embedded broker up until graceful shutdown. It is the first
/// service, so it stops last, after every client has closed.
struct EmbeddedBrokerService: Service {
    let broker: EmbeddedBroker
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        logger.info("embedded broker stopping; its topics are discarded")
        // Destroying the mock cluster waits for its thread: not on the concurrency pool.
        let thread = DedicatedThread(name: "embedded-broker-stop")
        try? await thread.run { [broker] in broker.shutdown() }  // a fresh thread: never stopped yet
        thread.stop()
    }
}
