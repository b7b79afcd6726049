import Logging
import ServiceLifecycle

/// Follows the pool topic for as long as the daemon runs (`PoolFollower`)
/// and seeds it from generate.lua's `tasks` the first time, retrying every
/// second while the brokers do not answer. Until the pool is read, pool
/// requests answer 503 and `generate()` sees an empty pool.
struct TaskPoolService: Service {
    let store: TaskPoolStore
    let initialTasks: [TaskSpec]
    let logger: Logger

    func run() async throws {
        store.follower.start()
        let state = store.follower.state
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                guard await state.wait(until: { $0.caughtUp }) else { return }
                if state.read(\.seeded) {
                    logger.info("task pool read", metadata: [LogKey.topic: "\(store.topic)", LogKey.count: "\(state.read(\.count))"])
                    return
                }
                do {
                    try await store.seed(initialTasks)
                    return
                } catch {
                    logger.warning("could not seed the task pool, retrying in 1 s: \(error)", metadata: [LogKey.topic: "\(store.topic)"])
                    try await Task.sleep(for: .seconds(1))
                }
            }
        }
        // A service that returns ends the application: stay until shutdown.
        try? await gracefulShutdown()
        // A POST answered with an error must not come back after a restart:
        // its retraction gets a producer timeout and a few retries to land.
        await store.stop(grace: .milliseconds(2 * store.waitMs + 3000))
        // Blocking (one poll): off the concurrency pool.
        let thread = DedicatedThread(name: "pool-follower-stop")
        try? await thread.run { store.follower.stop() }  // a fresh thread: never stopped yet
        thread.stop()
    }
}
