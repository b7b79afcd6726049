import Logging
import ServiceLifecycle

/// Reads the task pool back from its topic at start (seeding it from
/// generate.lua's `tasks` the first time), retrying every second while the
/// brokers do not answer. Until then pool requests answer 503 and
/// `generate()` sees an empty pool.
struct TaskPoolService: Service {
    let store: TaskPoolStore
    let initialTasks: [TaskSpec]
    let bootstrapServers: String
    let properties: [String: String]
    let logger: Logger

    func run() async throws {
        let thread = DedicatedThread(name: "pool-reader")
        defer { thread.stop() }
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let (topic, servers, properties, logger) = (store.topic, bootstrapServers, self.properties, self.logger)
                    let records = try await thread.run {
                        try PoolTopicReader.read(topic: topic, bootstrapServers: servers, properties: properties,
                                                 timeoutMs: 5000, logger: logger)
                    }
                    try await store.load(records: records, initial: initialTasks)
                    return
                } catch {
                    logger.warning("could not read the task pool, retrying in 1 s: \(error)", metadata: [LogKey.topic: "\(store.topic)"])
                    try await Task.sleep(for: .seconds(1))
                }
            }
        }
        // A service that returns ends the application: stay until shutdown.
        try? await gracefulShutdown()
    }
}
