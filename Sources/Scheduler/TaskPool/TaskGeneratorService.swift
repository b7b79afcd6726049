import Logging
import ServiceLifecycle

/// Calls `generate(tick, pool)` every `producer.interval_ms` and publishes
/// what it returns, while this daemon is the pool's publisher (`PoolElection`:
/// one daemon per pool topic). A script error is logged with file and line
/// and the next tick runs as usual.
///
/// Each tick is framed by tick records in the pool topic (`TickPlan`), so a
/// daemon that takes over continues the numbering: at most the one tick its
/// predecessor was publishing when it died is run twice.
struct TaskGeneratorService: Service {
    let script: GenerateScript
    let publisher: TaskPublisher
    let pool: TaskPoolStore
    let election: PoolElection
    let metrics: SchedulerMetrics
    let intervalMs: Int
    let logger: Logger

    func run() async throws {
        let startedMs = RFC3339.nowMs
        election.start()
        let role = election.role
        // Stop ticking on graceful shutdown; a tick already publishing finishes.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                metrics.gauge(MetricName.poolPublisher, []).record(0)
                guard await role.wait(until: { $0.isPublisher }) else { break }
                metrics.gauge(MetricName.poolPublisher, []).record(1)
                try await publishWhileElected(startedMs: startedMs)
            }
        }
        metrics.gauge(MetricName.poolPublisher, []).record(0)
        // Leave the publishers' group so another daemon takes over at once (blocking: off the pool).
        let thread = DedicatedThread(name: "pool-election-stop")
        try? await thread.run { election.stop() }  // a fresh thread: never stopped yet
        thread.stop()
        await script.close()
    }

    /// Runs ticks for as long as this daemon stays the publisher of the term it was elected in.
    private func publishWhileElected(startedMs: Int64) async throws {
        let (term, end) = election.role.read { ($0.term, $0.electedAtEnd) }
        // Read every record the previous publisher wrote: its last tick record decides the next tick.
        while !(await pool.applied(end, timeout: .seconds(5))) {
            try Task.checkCancellation()
            guard election.role.read({ $0.isPublisher && $0.term == term }) else { return }
            logger.warning("the new pool publisher is still reading the pool topic up to offset \(end)", metadata: [LogKey.topic: "\(pool.topic)"])
        }
        var plan = TickPlan.takeover(after: pool.lastTick, intervalMs: intervalMs, startedMs: startedMs, nowMs: RFC3339.nowMs)
        if plan.redone {
            election.role.update { $0.redo() }
            metrics.counter(MetricName.poolTicks, [("outcome", "doubled")]).increment()
            logger.warning("the previous pool publisher began this tick and did not finish it: running it again", metadata: [LogKey.tick: "\(plan.tick)"])
        }
        logger.info("publishing the task pool from this tick", metadata: [LogKey.tick: "\(plan.tick)", LogKey.topic: "\(pool.topic)"])
        while true {
            let wait = plan.dueMs - RFC3339.nowMs
            if wait > 0 { try await Task.sleep(for: .milliseconds(wait)) }
            guard election.role.update({ $0.beginTick(term: term) }) else { return }
            let outcome = await runTick(plan)
            election.role.update { $0.endTick(outcome) }
            metrics.counter(MetricName.poolTicks, [("outcome", outcome.rawValue)]).increment()
            plan = plan.next(intervalMs: intervalMs, nowMs: RFC3339.nowMs)
        }
    }

    /// One tick: its tick record, `generate()`'s tasks published, the record saying it finished.
    func runTick(_ plan: TickPlan) async -> TickOutcome {
        do {
            try await pool.writeTick(PoolTick(tick: plan.tick, done: false, dueMs: plan.dueMs))
        } catch {
            logger.error("tick skipped: could not write its tick record to the pool topic: \(error)", metadata: [LogKey.tick: "\(plan.tick)"])
            return .skipped
        }
        await publishTick(plan.tick)
        do {
            try await pool.writeTick(PoolTick(tick: plan.tick, done: true, dueMs: plan.dueMs))
        } catch {
            // The next publisher, if one takes over before the next tick, runs this one again.
            logger.warning("could not record the end of a tick in the pool topic: \(error)", metadata: [LogKey.tick: "\(plan.tick)"])
        }
        return .published
    }

    private func publishTick(_ tick: Int) async {
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
