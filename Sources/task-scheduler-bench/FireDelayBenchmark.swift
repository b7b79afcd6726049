import Foundation
@_spi(Benchmark) import Scheduler
import Logging

/// The schedules' phase of `task-scheduler bench` (reader `schedules`):
/// `count` one-shot schedules due at random times within one minute, fired
/// by one daemon's schedule machinery (consumer, timer, producer) on the
/// benchmark's embedded broker; reports the fire delay (due time to the
/// broker's acknowledgement) against a reference measured in the same run:
/// the produce-to-acknowledgement latency of single messages on the same
/// broker, the floor under any fire. Also measures the memory one schedule
/// takes in the timer table.
struct FireDelayBenchmark: Sendable {
    /// Schedules created.
    var count = 10_000
    /// Window their due times are spread over.
    var windowMs: Int64 = 60_000
    /// Partitions of the schedule topic.
    var partitions = 4

    /// What it measured.
    struct Measured: Sendable {
        var fired = 0
        var delayP50Ms = 0.0
        var delayP99Ms = 0.0
        var delayMaxMs = 0.0
        var produceP50Ms = 0.0
        var produceP99Ms = 0.0
        var bytesPerSchedule = 0.0
    }

    func run(broker: EmbeddedBroker, logger: Logger, report: @Sendable (String) -> Void) async throws -> Measured {
        var measured = Measured()
        measured.bytesPerSchedule = Self.tableBytesPerSchedule(count: 100_000)
        report(String(format: "schedules: %.0f bytes of heap per schedule in the timer table (100,000 schedules, 32-byte message)", measured.bytesPerSchedule))

        let scheduleTopic = "bench-schedules"
        try broker.createTopic(scheduleTopic, partitions: partitions)
        let output = "bench-fired"
        try broker.createTopic(output, partitions: 4)
        // The daemon's producer settings.
        let producer = try KafkaProducer.make(bootstrapServers: broker.bootstrapServers, deliveryTimeoutMs: 30_000,
                                              properties: ["queue.buffering.max.messages": "200000"])
        let publisher = TaskPublisher(producer: producer, maxMessageBytes: 1_000_000, logger: logger, metrics: SchedulerMetrics(), topicCreator: nil)

        // Reference: one message at a time, enqueue to acknowledgement.
        var produce: [Double] = []
        for index in 0..<1000 {
            let started = ContinuousClock.now
            _ = try await producer.send(OutgoingMessage(topic: output, key: Array("ref\(index)".utf8), value: Array("reference".utf8)))
            produce.append(Double((ContinuousClock.now - started) / .microseconds(1)) / 1000)
            try await Task.sleep(for: .milliseconds(2))
        }
        measured.produceP50Ms = Self.quantile(produce, 0.5)
        measured.produceP99Ms = Self.quantile(produce, 0.99)
        report(String(format: "reference: single produce to acknowledgement, 1000 messages: p50 %.3f ms, p99 %.3f ms", measured.produceP50Ms, measured.produceP99Ms))

        let rig = ScheduleRig(topic: scheduleTopic, group: "bench-schedules-\(UUID().uuidString.prefix(6))", partitions: partitions,
                              maxSchedules: count * 2, bootstrapServers: broker.bootstrapServers, publisher: publisher, logger: logger)
        rig.start()
        do {
            try await fire(rig, output: output, into: &measured, report: report)
        } catch {
            await Self.stop(rig, producer)
            throw error
        }
        await Self.stop(rig, producer)
        return measured
    }

    /// Leaves the group and stops the timer (blocking: on a thread of its own), then closes the producer.
    private static func stop(_ rig: ScheduleRig, _ producer: KafkaProducer) async {
        let thread = DedicatedThread(name: "bench-schedules-stop")
        try? await thread.run { rig.stop() }  // a fresh thread: never stopped yet
        thread.stop()
        await producer.close(timeoutMs: 5000)
    }

    private func fire(_ rig: ScheduleRig, output: String, into measured: inout Measured,
                      report: @Sendable (String) -> Void) async throws {
        let joinDeadline = ContinuousClock.now + .seconds(60)
        while !rig.isLive {
            guard ContinuousClock.now < joinDeadline else { throw BenchmarkError("the schedule partitions were not assigned in 60 s") }
            try await Task.sleep(for: .milliseconds(20))
        }
        // Due from 5 s on (time to store and read them all), over the window.
        let start = ScheduleRig.nowMs + 5000
        var generator = SystemRandomNumberGenerator()
        var pending: [PendingDelivery] = []
        for index in 0..<count {
            let due = start + Int64.random(in: 0..<windowMs, using: &generator)
            pending.append(try rig.addOneShot(topic: output, message: "fire \(index)", key: "k\(index % 100)", dueMs: due))
        }
        for delivery in pending { _ = try await delivery.report() }
        report("schedules: \(count) stored, due within \(windowMs / 1000) s from \(ScheduleRig.format(start))")
        let deadline = ContinuousClock.now + .milliseconds(Int(windowMs) + 60_000)
        while rig.fireDelaysMicros.count < count {
            guard ContinuousClock.now < deadline else { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let delays = rig.fireDelaysMicros.map { Double($0) / 1000 }
        measured.fired = delays.count
        measured.delayP50Ms = Self.quantile(delays, 0.5)
        measured.delayP99Ms = Self.quantile(delays, 0.99)
        measured.delayMaxMs = delays.max() ?? 0
        let left = rig.remaining
        report(String(format: "schedules: %d of %d fired (%d left); due to acknowledgement p50 %.3f ms, p99 %.3f ms, max %.3f ms",
                      measured.fired, count, left, measured.delayP50Ms, measured.delayP99Ms, measured.delayMaxMs))
    }

    /// Memory one schedule takes in a `ScheduleTable` (entry, timer,
    /// schedule with a short task): the growth of the resident set while
    /// `count` schedules are added, divided by `count`.
    static func tableBytesPerSchedule(count: Int) -> Double {
        Double(ScheduleRig.residentGrowth(ofOneShots: count, resident: residentBytes)) / Double(count)
    }

    /// Resident set size of this process (/proc/self/statm).
    static func residentBytes() -> Int {
        let text = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? ""
        let pages = text.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    static func quantile(_ values: [Double], _ q: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        return sorted[max(0, min(sorted.count - 1, Int((Double(sorted.count) * q).rounded(.up)) - 1))]
    }
}
