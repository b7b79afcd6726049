import Foundation
@_spi(Benchmark) import Scheduler
import Logging

/// `task-scheduler bench`: steady-state throughput on one embedded broker.
///
/// A backlog of `messages` keyed messages over `partitions` partitions is
/// produced first; then every reader works through all of it, each timed from
/// its first message to its last: librdkafka alone (the limit), kcat, the
/// scheduler with a no-op `process()`, the scheduler with a `process()` that
/// emits every message to another topic (timed until every emit is
/// acknowledged and committable), and the Python peer doing the same
/// consume-produce-commit work. The emitting runs' outputs are read back:
/// nothing lost, nothing doubled, per-key order kept.
public struct ThroughputBenchmark: Sendable {
    /// Messages in the backlog.
    public var messages = 1_000_000
    /// Partitions of the backlog topic (the mock keeps ~100k messages each).
    public var partitions = 16
    /// Workers in the group.
    public var workers = 4
    /// Slice length: short, so the run crosses many slice boundaries.
    public var sliceMs = 50
    /// Runs of the fast readers (librdkafka, kcat, scheduler no-op); medians are reported.
    public var runs = 3
    /// Messages the Python peer works through (it is ~100x slower than the others).
    public var peerMessages = 1_000_000
    /// Payload size in bytes.
    public var payloadBytes = 32
    /// Distinct keys.
    public var keys = 1000
    /// The readers to run (all but `startup` by default: it stores
    /// 1,000,000 schedules and starts a daemon holding them, ~5 GB); for
    /// profiling one of them.
    public var readers: Set<Reader> = Set(Reader.allCases).subtracting([.startup])

    /// The benchmark's readers and phases.
    public enum Reader: String, Sendable, CaseIterable {
        case librdkafka, kcat, floor, noop, batch, columns, emitting, python, handoff, schedules, lanes, startup
    }

    /// Pairs of key-lane runs.
    public var lanePairs = 5
    /// Schedules of the `schedules` phase, due within one minute.
    public var schedules = 100_000
    /// Partitions of the `schedules` phase's schedule topic.
    public var schedulePartitions = 16
    /// Schedules stored before the daemon of the `startup` phase starts.
    public var storedSchedules = 1_000_000
    /// Partitions of the `startup` phase's schedule topic.
    public var startupPartitions = 64

    /// Creates a benchmark with the defaults.
    public init() {}

    /// One measured run.
    public struct Run: Sendable {
        /// Messages read.
        public var messages: Int
        /// From the first message to the last.
        public var seconds: Double
        /// CPU time of the whole process during the run (every thread:
        /// librdkafka's, the workers', the embedded broker's), if measured.
        public var cpuSeconds: Double?
        /// Messages per second.
        public var rate: Double { Double(messages) / seconds }
        /// Microseconds of CPU per message.
        public var cpuMicrosPerMessage: Double? { cpuSeconds.map { $0 * 1e6 / Double(messages) } }
    }

    /// Everything the benchmark measured.
    public struct Result: Sendable {
        public var librdkafka: [Run] = []
        public var kcat: [Run] = []
        public var noop: [Run] = []
        public var batch: [Run] = []
        public var columns: [Run] = []
        public var emitting: [Run] = []
        public var python: [Run] = []
        /// Problems found in the emitting runs' outputs (lost, doubled, out of order).
        public var outputProblems: [String] = []
        public var gapP50Ms: Double?
        public var gapP99Ms: Double?
        public var gapCount = 0
        public var slices = 0
        /// The Lua side alone (no Kafka): the floor of the no-op path.
        var luaFloor: LuaFloorBenchmark.Measured?
        /// Key lanes: pairs of runs, `lanes = 1` then `lanes = 4` (the `lanes` reader).
        var lanes: [LaneBenchmark.Measured] = []
        /// The schedules phase: fires of `schedules` schedules due within a minute.
        public var schedulesFired: Int?
        public var fireDelayP50Ms: Double?
        public var fireDelayP95Ms: Double?
        public var fireDelayP99Ms: Double?
        public var fireDelayMaxMs: Double?
        public var produceP99Ms: Double?
        /// Lost or doubled fires, as the independent reader counted them.
        public var fireProblems: [String] = []
        /// Heap bytes per schedule in the timer table (slope between two sizes).
        public var bytesPerSchedule: Double?
        /// The `startup` phase: a daemon on an empty schedule topic, then on `storedSchedules`.
        var startup: (empty: StartupBenchmark.Measured, full: StartupBenchmark.Measured)?
    }

    /// Runs the benchmark; `report` receives progress lines.
    public func run(logger: Logger, report: @Sendable (String) -> Void) async throws -> Result {
        var result = Result()
        if readers.contains(.schedules) {
            // First, while the heap is fresh: the resident set's growth is
            // only a cross-check before other phases freed memory to reuse.
            let memory = ScheduleMemory.measure()
            result.bytesPerSchedule = memory.slope
            report(ScheduleMemory.describe(memory))
        }
        let broker = try EmbeddedBroker.start()
        defer { broker.shutdown() }
        let topic = "bench"
        try broker.createTopic(topic, partitions: partitions)
        report("embedded broker \(broker.bootstrapServers); producing \(messages) messages of \(payloadBytes) bytes, \(keys) keys, to \(partitions) partitions")
        let producer = try KafkaProducer.make(
            bootstrapServers: broker.bootstrapServers, deliveryTimeoutMs: 120_000,
            properties: ["queue.buffering.max.messages": "2000000", "linger.ms": "20"])
        try await produceBacklog(producer, topic: topic)
        report("backlog produced")
        let fetch = ["queued.max.messages.kbytes": "16384", "fetch.max.bytes": "8388608"]

        if readers.contains(.floor) {
            let floor = try LuaFloorBenchmark(messages: messages, payloadBytes: payloadBytes, keys: keys).run()
            report(String(format: "Lua floor (no Kafka, one thread): empty call %.3f us; process(msg) %.3f us per message one call each, %.3f driven per batch; process_batch(msgs) %.3f us per message; process_columns(batch) %.3f us per message",
                          floor.emptyCallMicros, floor.processMicros, floor.eachMicros, floor.batchMicros, floor.columnsMicros))
            result.luaFloor = floor
        }
        let output = "bench-out"
        try broker.createTopic(output, partitions: partitions)
        let noopScripts = try await ScriptCatalog.load(directory: BenchScripts.make(process: BenchScripts.noop), limits: .standard, needsProcess: true, logger: logger)
        let batchScripts = try await ScriptCatalog.load(directory: BenchScripts.make(process: BenchScripts.noopBatch), limits: .standard, needsProcess: true, logger: logger)
        let columnsScripts = try await ScriptCatalog.load(directory: BenchScripts.make(process: BenchScripts.noopColumns), limits: .standard, needsProcess: true, logger: logger)
        let emittingScripts = try await ScriptCatalog.load(directory: BenchScripts.make(process: BenchScripts.emitting(to: output)), limits: .standard, needsProcess: true, logger: logger)
        let publisher = TaskPublisher(producer: producer, maxMessageBytes: 1_000_000, logger: logger, metrics: SchedulerMetrics(), topicCreator: nil)
        var gaps: [Duration] = []  // from the handoff phase only: it is built to hand off
        let scheduler = BenchScheduler(bootstrap: broker.bootstrapServers, partitions: partitions, messages: messages, publisher: publisher, logger: logger)
        let noopReaders: [(reader: Reader, label: String, scripts: ScriptCatalog, runs: WritableKeyPath<Result, [Run]>)] = [
            (.noop, "no-op", noopScripts, \.noop),
            (.batch, "no-op process_batch()", batchScripts, \.batch),
            (.columns, "no-op process_columns()", columnsScripts, \.columns),
        ]
        // In rounds: each round runs every fast reader once, so the readers a
        // ratio compares ran within a minute of each other. This machine's
        // speed drifts by 10-25 % over minutes; running all of one reader's
        // runs before the next one's put that drift into the ratios.
        for attempt in 1...runs {
            if readers.contains(.librdkafka) {
                let run = try BenchReaders.librdkafka(bootstrap: broker.bootstrapServers, topic: topic, partitions: partitions, expected: messages, properties: fetch).run
                report("librdkafka run \(attempt): \(describe(run))")
                result.librdkafka.append(run)
            }
            if readers.contains(.kcat) {
                let run = try BenchReaders.kcat(bootstrap: broker.bootstrapServers, topic: topic, expected: messages)
                report("kcat run \(attempt): \(describe(run))")
                result.kcat.append(run)
            }
            for scheduled in noopReaders where readers.contains(scheduled.reader) {
                let measured = try await scheduler.run(group: group("\(scheduled.reader.rawValue)-\(attempt)", topic: topic), catalog: scheduled.scripts, waitForEmits: false)
                result.slices += measured.slices
                report("scheduler \(scheduled.label) run \(attempt): \(describe(measured.run)), \(measured.slices) slices, workers busy \(String(format: "%.2f", measured.busySeconds)) s")
                result[keyPath: scheduled.runs].append(measured.run)
            }
        }
        if readers.contains(.emitting) {
            let measured = try await scheduler.run(group: group("emit", topic: topic), catalog: emittingScripts, waitForEmits: true)
            result.slices += measured.slices
            report("scheduler emitting run: \(describe(measured.run)) (until every emit was acknowledged), \(measured.slices) slices, workers busy \(String(format: "%.2f", measured.busySeconds)) s")
            result.emitting.append(measured.run)
            result.outputProblems = try checkOutput(broker: broker, topic: output)
            report(result.outputProblems.isEmpty ? "emitted output: \(messages) messages, none lost, none doubled, per-key order kept" : "emitted output problems: \(result.outputProblems.joined(separator: "; "))")
        }
        if readers.contains(.handoff) {
            // Handoffs happen when a worker is idle while a partition has
            // work: more workers than partitions, short slices.
            let handoffTopic = "bench-handoff"
            try broker.createTopic(handoffTopic, partitions: 4)
            try await produceBacklog(producer, topic: handoffTopic, count: 400_000)
            var attempt = 0
            while gaps.count < 500 && attempt < 10 {
                attempt += 1
                var handoffGroup = group("handoff-\(attempt)", topic: handoffTopic)
                handoffGroup.workers = 6
                handoffGroup.sliceMs = 10
                let measured = try await BenchScheduler(bootstrap: broker.bootstrapServers, partitions: 4, messages: 400_000, publisher: publisher, logger: logger)
                    .run(group: handoffGroup, catalog: noopScripts, waitForEmits: false)
                gaps += measured.gaps
                result.slices += measured.slices
                report("handoff run \(attempt) (4 partitions, 6 workers, slice 10 ms): \(describe(measured.run)), \(measured.slices) slices, \(measured.handoffs) handoffs")
            }
        }
        if readers.contains(.lanes) {
            result.lanes = try await LaneBenchmark(workers: workers, runs: lanePairs).run(broker: broker, producer: producer, publisher: publisher, logger: logger, report: report)
        }
        await producer.close(timeoutMs: 5000)

        let peerOutput = "bench-peer-out"
        try broker.createTopic(peerOutput, partitions: partitions)
        if readers.contains(.python) {
            do {
            let run = try BenchReaders.python(bootstrap: broker.bootstrapServers, topic: topic, output: peerOutput, expected: min(peerMessages, messages))
            report("python peer (confluent-kafka, consume 1000 / produce / flush / commit): \(describe(run))")
            result.python.append(run)
            } catch {
                report("python peer skipped: \(error)")
            }
        }
        if readers.contains(.schedules) {
            var phase = FireDelayBenchmark()
            phase.count = schedules
            phase.partitions = schedulePartitions
            let fired = try await phase.run(broker: broker, logger: logger, report: report)
            result.schedulesFired = fired.fired
            result.fireDelayP50Ms = fired.delayP50Ms
            result.fireDelayP95Ms = fired.delayP95Ms
            result.fireDelayP99Ms = fired.delayP99Ms
            result.fireDelayMaxMs = fired.delayMaxMs
            result.produceP99Ms = fired.produceP99Ms
            result.fireProblems = fired.outputProblems
        }
        if readers.contains(.startup) {
            var phase = StartupBenchmark()
            phase.stored = storedSchedules
            phase.partitions = startupPartitions
            result.startup = try await phase.run(logger: logger, report: report)
        }
        result.gapCount = gaps.count
        result.gapP50Ms = Self.quantileMs(gaps, 0.5)
        result.gapP99Ms = Self.quantileMs(gaps, 0.99)
        return result
    }

    /// The `q` quantile (0...1) of `durations` in milliseconds (nearest rank), or nil.
    static func quantileMs(_ durations: [Duration], _ q: Double) -> Double? {
        guard !durations.isEmpty else { return nil }
        let sorted = durations.sorted()
        let index = min(sorted.count - 1, max(0, Int((Double(sorted.count) * q).rounded(.up)) - 1))
        return Double(sorted[index] / .microseconds(1)) / 1000
    }

    private func group(_ name: String, topic: String) -> GroupConfig {
        var group = GroupConfig(name: "bench-\(name)-\(UUID().uuidString.prefix(6))", topics: [topic], workers: workers, sliceMs: sliceMs)
        group.maxAttempts = 1
        return group
    }

    /// Fills the topic: payload `<sequence number>` padded to `payloadBytes`, key `k<n mod keys>`.
    private func produceBacklog(_ producer: KafkaProducer, topic: String, count: Int? = nil) async throws {
        var deliveries: [PendingDelivery] = []
        deliveries.reserveCapacity(count ?? messages)
        for index in 0..<(count ?? messages) {
            let sequence = String(index)
            let payload = Array((sequence + String(repeating: " ", count: max(0, payloadBytes - sequence.count))).utf8)
            deliveries.append(producer.enqueue(OutgoingMessage(topic: topic, key: Array("k\(index % keys)".utf8), value: payload)))
        }
        for delivery in deliveries { _ = try await delivery.report() }
    }

    /// Reads the emitting run's output back: every sequence number exactly
    /// once, and per key in increasing order.
    private func checkOutput(broker: EmbeddedBroker, topic: String) throws -> [String] {
        let read = try BenchReaders.librdkafka(bootstrap: broker.bootstrapServers, topic: topic, partitions: partitions,
                                               expected: messages, properties: [:], collect: true).messages
        var seen = [Bool](repeating: false, count: messages)
        var lastPerKey: [String: Int] = [:]
        var doubled = 0
        var outOfOrder = 0
        for message in read {
            guard let sequence = Int(message.value.trimmingCharacters(in: .whitespaces)), sequence < messages else { continue }
            if seen[sequence] { doubled += 1 }
            seen[sequence] = true
            if let last = lastPerKey[message.key], last > sequence { outOfOrder += 1 }
            lastPerKey[message.key] = sequence
        }
        let lost = seen.reduce(0) { $0 + ($1 ? 0 : 1) }
        var problems: [String] = []
        if lost > 0 { problems.append("\(lost) lost") }
        if doubled > 0 { problems.append("\(doubled) doubled") }
        if outOfOrder > 0 { problems.append("\(outOfOrder) out of per-key order") }
        return problems
    }

    private func describe(_ run: Run) -> String {
        "\(run.messages) messages in \(String(format: "%.3f", run.seconds)) s = \(Int(run.rate)) msg/s"
            + (run.cpuMicrosPerMessage.map { String(format: ", %.2f us CPU per message", $0) } ?? "")
    }
}

/// The scripts the benchmark's groups run.
enum BenchScripts {
    static let noop = "function process(msg) end\n"
    static let noopBatch = "function process(msg) end\nfunction process_batch(msgs) end\n"
    static let noopColumns = "function process(msg) end\nfunction process_columns(batch) end\n"
    static func emitting(to topic: String) -> String {
        "function process(msg)\n  scheduler.emit(\"\(topic)\", msg.payload, msg.key)\nend\n"
    }

    /// A scripts directory whose process.lua is `process`.
    static func make(process: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("task-scheduler-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try process.write(to: directory.appendingPathComponent(ScriptCatalog.process), atomically: true, encoding: .utf8)
        try "function generate() end\n".write(to: directory.appendingPathComponent(ScriptCatalog.generate), atomically: true, encoding: .utf8)
        return directory.path
    }
}

/// The benchmark could not measure.
struct BenchmarkError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
