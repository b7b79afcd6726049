import Logging
import ServiceLifecycle

/// Calls `generate(tick, pool)` every `producer.interval_ms` and publishes
/// what it returns. A script error is logged with file and line and the next
/// tick runs as usual.
struct TaskGeneratorService: Service {
    let script: GenerateScript
    let publisher: TaskPublisher
    let pool: TaskPoolStore
    let intervalMs: Int
    let logger: Logger

    func run() async throws {
        // Stop ticking on graceful shutdown; a tick already publishing finishes.
        try? await cancelWhenGracefulShutdown {
            var tick = 0
            while !Task.isCancelled {
                try await Task.sleep(for: .milliseconds(intervalMs))
                tick += 1
                await runTick(tick)
            }
        }
        await script.close()
    }

    func runTick(_ tick: Int) async {
        let tasks: [TaskSpec]
        do {
            // While the pool is still being read, generate() sees it empty.
            tasks = try await script.generate(tick: tick, pool: pool.tasks ?? [])
        } catch let error as LuaError {
            logger.error("generate() failed: \(error)", metadata: [
                LogKey.script: "\(error.script)", LogKey.line: "\(error.line.map(String.init) ?? "?")", LogKey.tick: "\(tick)",
            ])
            return
        } catch {
            logger.error("generate() failed: \(error)", metadata: [LogKey.tick: "\(tick)"])
            return
        }
        let results = await publisher.publishAll(tasks)
        for (task, result) in zip(tasks, results) {
            if case .failure(let error) = result {
                logger.error("could not publish a generated task: \(error)", metadata: [LogKey.topic: "\(task.topic)", LogKey.tick: "\(tick)"])
            }
        }
    }
}
