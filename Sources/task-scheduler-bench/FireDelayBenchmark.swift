import CRdKafka
import Foundation
@_spi(Benchmark) import Scheduler
import Logging

/// The schedules' phase of `task-scheduler bench` (reader `schedules`):
/// `count` one-shot schedules due at random times within one minute, fired
/// by one daemon's schedule machinery (consumer, timer, producer) on the
/// benchmark's embedded broker; reports the fire delay (due time to the
/// broker's acknowledgement) against a reference measured in the same run:
/// the produce-to-acknowledgement latency of single messages on the same
/// broker, the floor under any fire. An independent reader then counts the
/// fires on the target topic: each schedule fired exactly once.
struct FireDelayBenchmark: Sendable {
    /// Schedules created.
    var count = 100_000
    /// Window their due times are spread over.
    var windowMs: Int64 = 60_000
    /// Partitions of the schedule topic: 16, not the daemon's default 4,
    /// because the embedded broker keeps only the last 5 MB of each
    /// partition (no compaction): 100,000 creations and tombstones of ~300
    /// bytes in 4 partitions would push creations out before they are read.
    var partitions = 16

    /// What it measured.
    struct Measured: Sendable {
        var fired = 0
        var delayP50Ms = 0.0
        var delayP95Ms = 0.0
        var delayP99Ms = 0.0
        var delayMaxMs = 0.0
        var produceP50Ms = 0.0
        var produceP99Ms = 0.0
        /// Fires read back from the target topic by an independent reader: lost and doubled.
        var outputProblems: [String] = []
    }

    func run(broker: EmbeddedBroker, logger: Logger, report: @Sendable (String) -> Void) async throws -> Measured {
        var measured = Measured()
        let scheduleTopic = "bench-schedules"
        try broker.createTopic(scheduleTopic, partitions: partitions)
        let output = "bench-fired"
        try broker.createTopic(output, partitions: 8)
        let reference = "bench-reference"
        try broker.createTopic(reference, partitions: 1)
        // The daemon's producer settings.
        let producer = try KafkaProducer.make(bootstrapServers: broker.bootstrapServers, deliveryTimeoutMs: 30_000,
                                              properties: ["queue.buffering.max.messages": "400000"])
        let publisher = TaskPublisher(producer: producer, maxMessageBytes: 1_000_000, logger: logger, metrics: SchedulerMetrics(), topicCreator: nil)

        // Reference: one message at a time, enqueue to acknowledgement.
        var produce: [Double] = []
        for index in 0..<1000 {
            let started = ContinuousClock.now
            _ = try await producer.send(OutgoingMessage(topic: reference, key: Array("ref\(index)".utf8), value: Array("reference".utf8)))
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
        measured.outputProblems = try Self.checkFired(bootstrap: broker.bootstrapServers, topic: output, partitions: 8, expected: count)
        report("schedules: fires read back from \(output) by an independent reader: "
               + (measured.outputProblems.isEmpty ? "\(count) fires, none lost, none doubled" : measured.outputProblems.joined(separator: ", ")))
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
        // Due from 5 s on, plus 1 s per 10,000 schedules (time to store them
        // and read them back), over the window.
        let leadMs = 5000 + Int64(count) / 10
        let start = ScheduleRig.nowMs + leadMs
        var generator = SystemRandomNumberGenerator()
        var pending: [PendingDelivery] = []
        pending.reserveCapacity(count)
        let storing = ContinuousClock.now
        for index in 0..<count {
            let due = start + Int64.random(in: 0..<windowMs, using: &generator)
            pending.append(try rig.addOneShot(topic: output, message: "fire \(index)", key: "k\(index % 100)", dueMs: due))
        }
        for delivery in pending { _ = try await delivery.report() }
        pending = []
        let stored = ContinuousClock.now - storing
        while rig.remaining + rig.fireDelaysMicros.count < count && ContinuousClock.now < storing + .milliseconds(Int(leadMs)) {
            try await Task.sleep(for: .milliseconds(20))
        }
        let readBack = ContinuousClock.now - storing
        report(String(format: "schedules: %d stored in %.2f s and in the owner's table after %.2f s (the first due %.1f s after storing began), due within %d s from %@",
                      count, Double(stored / .milliseconds(1)) / 1000, Double(readBack / .milliseconds(1)) / 1000, Double(leadMs) / 1000,
                      Int(windowMs / 1000), ScheduleRig.format(start)))
        let deadline = ContinuousClock.now + .milliseconds(Int(windowMs + leadMs) + 60_000)
        while rig.fireDelaysMicros.count < count {
            guard ContinuousClock.now < deadline else { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let delays = rig.fireDelaysMicros.map { Double($0) / 1000 }
        measured.fired = delays.count
        measured.delayP50Ms = Self.quantile(delays, 0.5)
        measured.delayP95Ms = Self.quantile(delays, 0.95)
        measured.delayP99Ms = Self.quantile(delays, 0.99)
        measured.delayMaxMs = delays.max() ?? 0
        let left = rig.remaining
        // In order of acknowledgement (about that of the due times): where in the minute the slow ones were.
        let tenth = max(delays.count / 10, 1)
        let taken = rig.takeDelaysMs.map(Double.init)
        report(String(format: "schedules: of which due to taken by the timer thread p50 %.0f ms, p99 %.0f ms, max %.0f ms (ms resolution); the rest is publication to acknowledgement",
                      Self.quantile(taken, 0.5), Self.quantile(taken, 0.99), taken.max() ?? 0))
        report("schedules: p99 per tenth of the fires, in order: " + stride(from: 0, to: delays.count, by: tenth).map {
            String(format: "%.0f", Self.quantile(Array(delays[$0..<min($0 + tenth, delays.count)]), 0.99))
        }.joined(separator: ", ") + " ms")
        report(String(format: "schedules: %d of %d fired (%d left); due to acknowledgement p50 %.3f ms, p95 %.3f ms, p99 %.3f ms, max %.3f ms",
                      measured.fired, count, left, measured.delayP50Ms, measured.delayP95Ms, measured.delayP99Ms, measured.delayMaxMs))
    }

    /// Reads every message of `topic` (as many as its watermarks say it
    /// holds) with a consumer of its own: each of the `expected` fires
    /// ("fire <n>") exactly once.
    static func checkFired(bootstrap: String, topic: String, partitions: Int, expected: Int) throws -> [String] {
        let held = try messageCount(bootstrap: bootstrap, topic: topic, partitions: partitions)
        let read = try BenchReaders.librdkafka(bootstrap: bootstrap, topic: topic, partitions: partitions,
                                               expected: held, properties: [:], collect: true).messages
        var seen = [Int](repeating: 0, count: expected)
        var foreign = 0
        for message in read {
            guard message.value.hasPrefix("fire "), let index = Int(message.value.dropFirst(5)), index >= 0, index < expected else {
                foreign += 1
                continue
            }
            seen[index] += 1
        }
        let lost = seen.filter { $0 == 0 }.count
        let doubled = seen.reduce(0) { $0 + max($1 - 1, 0) }
        var problems: [String] = []
        if lost > 0 { problems.append("\(lost) of \(expected) lost") }
        if doubled > 0 { problems.append("\(doubled) doubled") }
        if foreign > 0 { problems.append("\(foreign) unexpected messages") }
        return problems
    }

    /// Messages `topic` holds: the sum over its partitions of high minus low watermark.
    static func messageCount(bootstrap: String, topic: String, partitions: Int) throws -> Int {
        let marks = try watermarks(bootstrap: bootstrap, topic: topic, partitions: partitions)
        return marks.high - marks.low
    }

    /// The sums over the partitions of `topic` of their low and high watermarks.
    static func watermarks(bootstrap: String, topic: String, partitions: Int) throws -> (low: Int, high: Int) {
        let consumer = try KafkaConsumer.make(bootstrapServers: bootstrap, groupID: "bench-count-\(UUID().uuidString.prefix(8))", properties: [:])
        defer { consumer.close() }
        var total = (low: 0, high: 0)
        for partition in 0..<partitions {
            var low: Int64 = 0, high: Int64 = 0
            let err = rd_kafka_query_watermark_offsets(consumer.handle, topic, Int32(partition), &low, &high, 10_000)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw BenchmarkError("watermarks of \(topic) [\(partition)]: \(String(cString: rd_kafka_err2str(err)))") }
            total.low += Int(low)
            total.high += Int(high)
        }
        return total
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
