import Foundation
import Logging

/// `task-scheduler bench`: in one run against one embedded broker, measures
/// (a) kcat reading a topic and (b) a group of this scheduler processing the
/// same topic with a no-op `process()`, and reports both rates, their ratio
/// and the handoff gaps. Figures, not pass/fail: the machines are shared.
public struct ThroughputBenchmark: Sendable {
    /// Messages in the topic.
    public var messages = 200_000
    /// Partitions of the topic.
    public var partitions = 4
    /// Workers in the group.
    public var workers = 6
    /// Slice length: short, so the run crosses many slice boundaries.
    public var sliceMs = 50
    /// Runs of each reader; the best and the median are reported.
    public var runs = 3
    /// Payload size in bytes.
    public var payloadBytes = 32

    /// Creates a benchmark with the defaults.
    public init() {}

    /// One measured run.
    public struct Run: Sendable {
        /// Messages read.
        public var messages: Int
        /// Wall time.
        public var seconds: Double
        /// Messages per second.
        public var rate: Double { Double(messages) / seconds }
    }

    /// Everything the benchmark measured.
    public struct Result: Sendable {
        public var kcat: [Run]
        public var scheduler: [Run]
        public var gapP50Ms: Double?
        public var gapP99Ms: Double?
        public var gapCount: Int
        public var slices: Int
    }

    /// Runs the benchmark; `report` receives progress lines.
    public func run(logger: Logger, report: @Sendable (String) -> Void) async throws -> Result {
        let broker = try EmbeddedBroker.start()
        defer { broker.shutdown() }
        let topic = "bench"
        try broker.createTopic(topic, partitions: partitions)
        report("embedded broker \(broker.bootstrapServers); producing \(messages) messages of \(payloadBytes) bytes to \(partitions) partitions")
        let producer = try KafkaProducer.make(
            bootstrapServers: broker.bootstrapServers, deliveryTimeoutMs: 60_000,
            properties: ["queue.buffering.max.messages": "1000000", "linger.ms": "20"])
        var deliveries: [PendingDelivery] = []
        deliveries.reserveCapacity(messages)
        let payload = Array(repeating: UInt8(ascii: "x"), count: payloadBytes)
        for index in 0..<messages {
            deliveries.append(producer.enqueue(OutgoingMessage(topic: topic, key: Array("k\(index % 1000)".utf8), value: payload)))
        }
        for delivery in deliveries { _ = try await delivery.report() }
        deliveries.removeAll()

        var kcatRuns: [Run] = []
        for attempt in 1...runs {
            let run = try KcatReader.read(bootstrap: broker.bootstrapServers, topic: topic, expected: messages)
            report("kcat run \(attempt): \(run.messages) messages in \(String(format: "%.3f", run.seconds)) s = \(Int(run.rate)) msg/s")
            kcatRuns.append(run)
        }

        let scripts = try await ScriptCatalog.load(directory: BenchScripts.make(), limits: .standard, needsProcess: true, logger: logger)
        let publisher = TaskPublisher(producer: producer, maxMessageBytes: 1_000_000, logger: logger, metrics: SchedulerMetrics(), topicCreator: nil)
        var schedulerRuns: [Run] = []
        var gaps = GapRecorder()
        var slices = 0
        for attempt in 1...runs {
            var group = GroupConfig(name: "bench-\(attempt)-\(UUID().uuidString.prefix(6))", topics: [topic], workers: workers, sliceMs: sliceMs)
            group.maxAttempts = 1
            let runtime = try await GroupRuntime.start(
                group: group, bootstrapServers: broker.bootstrapServers,
                properties: ["session.timeout.ms": "6000", "heartbeat.interval.ms": "1000"],
                publisher: publisher, catalog: scripts, logger: logger)
            // The clock starts when the group protocol has assigned the
            // partitions (the join itself is Kafka's, not the scheduler's).
            // Cheap probes on the coordinator's thread (a full snapshot would
            // sort gaps and build the lease history every 2 ms, slowing what is measured).
            while await runtime.coordinator.inspect({ $0.feeds.count }) < partitions { try await Task.sleep(for: .milliseconds(1)) }
            let start = ContinuousClock.now
            while await runtime.coordinator.inspect({ $0.feeds.values.reduce(0) { $0 + max(0, Int($1.nextOffset)) } }) < messages {
                try await Task.sleep(for: .milliseconds(2))
            }
            let elapsed = ContinuousClock.now - start
            let (runGaps, runSlices) = await runtime.coordinator.inspect { ($0.gaps, $0.activity.reduce(0) { $0 + $1.slices }) }
            await runtime.shutdown()
            for gap in runGaps.recentDurations { gaps.record(gap) }
            slices += runSlices
            let run = Run(messages: messages, seconds: Double(elapsed / .microseconds(1)) / 1e6)
            report("scheduler run \(attempt): \(run.messages) messages in \(String(format: "%.3f", run.seconds)) s = \(Int(run.rate)) msg/s, \(runSlices) slices, \(runGaps.count) handoffs")
            schedulerRuns.append(run)
        }
        await producer.close(timeoutMs: 5000)
        return Result(kcat: kcatRuns, scheduler: schedulerRuns, gapP50Ms: gaps.quantileMs(0.5), gapP99Ms: gaps.quantileMs(0.99), gapCount: gaps.count, slices: slices)
    }
}

/// Reads a topic from the beginning to its end with kcat, timing the whole process.
enum KcatReader {
    static func read(bootstrap: String, topic: String, expected: Int) throws -> ThroughputBenchmark.Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // -e: exit at the end of every partition; -f '\n': one line per message.
        process.arguments = ["kcat", "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "\n"]
        let output = Pipe()
        process.standardOutput = output
        let start = ContinuousClock.now
        try process.run()
        // One reader until end of file: kcat never blocks on a full pipe, and
        // no chunk is lost between a handler and a final read.
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let elapsed = ContinuousClock.now - start
        let lines = data.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
        guard process.terminationStatus == 0 else {
            throw BenchmarkError("kcat exited with status \(process.terminationStatus)")
        }
        guard lines == expected else {
            throw BenchmarkError("kcat read \(lines) messages, expected \(expected)")
        }
        return .init(messages: lines, seconds: Double(elapsed / .microseconds(1)) / 1e6)
    }
}

/// The scripts the benchmark's group runs: a no-op `process()`.
enum BenchScripts {
    static func make() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("task-scheduler-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try "function process(msg) end\n".write(to: directory.appendingPathComponent(ScriptCatalog.process), atomically: true, encoding: .utf8)
        try "function generate() end\n".write(to: directory.appendingPathComponent(ScriptCatalog.generate), atomically: true, encoding: .utf8)
        return directory.path
    }
}

/// The benchmark could not measure.
struct BenchmarkError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
