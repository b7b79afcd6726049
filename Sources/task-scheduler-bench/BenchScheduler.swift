import Foundation
@_spi(Benchmark) import Scheduler
import Logging

/// Runs one group of the scheduler over the benchmark's backlog and times it
/// from its first processed message to its last.
struct BenchScheduler: Sendable {
    let bootstrap: String
    let partitions: Int
    let messages: Int
    let publisher: TaskPublisher
    let logger: Logger

    struct Measured: Sendable {
        var run: ThroughputBenchmark.Run
        /// Handoff gaps recorded during the run (the most recent, up to the recorder's capacity).
        var gaps: [Duration]
        /// Handoffs counted during the run.
        var handoffs: Int
        var slices: Int
        /// Time the workers spent handling messages (in `process()` and around it).
        var busySeconds: Double
    }

    /// With `waitForEmits`, the run ends when every message is committable
    /// (processed and its emits acknowledged), not just processed.
    func run(group: GroupConfig, catalog: ScriptCatalog, waitForEmits: Bool) async throws -> Measured {
        let runtime = try await GroupRuntime.make(
            group: group, bootstrapServers: bootstrap,
            properties: ["session.timeout.ms": "6000", "heartbeat.interval.ms": "1000"],
            publisher: publisher, catalog: catalog, logger: logger)
        try runtime.startConsuming()
        // The group join is Kafka's business: wait for the assignment, then
        // watch the feeds' positions (atomics) from a thread of the benchmark's
        // own, so the probe neither hops onto the coordinator nor shares the pool.
        var feeds = try await runtime.positionProbe()
        let joinDeadline = ContinuousClock.now + .seconds(60)
        while feeds.partitions < partitions {
            guard ContinuousClock.now < joinDeadline else { throw BenchmarkError("the group was not assigned \(partitions) partitions in 60 s") }
            try await Task.sleep(for: .milliseconds(5))
            feeds = try await runtime.positionProbe()
        }
        let total = Int64(messages)
        let probe = DedicatedThread(name: "bench-probe")
        let timing = try await probe.run { [feeds] () throws -> (ContinuousClock.Instant, ContinuousClock.Instant, Double) in
            var first: ContinuousClock.Instant?
            var cpuAtFirst = 0.0
            let deadline = ContinuousClock.now + .seconds(600)
            while ContinuousClock.now < deadline {
                let processed = feeds.processed
                if first == nil && processed > 0 {
                    first = .now
                    cpuAtFirst = BenchReaders.processCPUSeconds()
                }
                let done = waitForEmits ? feeds.committable : processed
                if done >= total, let first { return (first, .now, BenchReaders.processCPUSeconds() - cpuAtFirst) }
                usleep(1000)  // 1 ms resolution on runs of a second or more
            }
            throw BenchmarkError("the scheduler did not finish \(total) messages in 600 s")
        }
        probe.stop()
        let totals = try await runtime.totals()
        await runtime.shutdown()
        let seconds = Double((timing.1 - timing.0) / .microseconds(1)) / 1e6
        return Measured(run: .init(messages: messages, seconds: seconds, cpuSeconds: timing.2), gaps: totals.gaps, handoffs: totals.handoffs,
                        slices: totals.slices, busySeconds: Double(totals.busy / .microseconds(1)) / 1e6)
    }
}
