import CRdKafka
import Foundation
@_spi(Benchmark) import Scheduler
import Logging

/// The `startup` phase of `task-scheduler-bench`: a daemon (the release
/// `task-scheduler` binary beside this one, as a process of its own) starting
/// on a schedule topic that already holds `stored` one-shot schedules.
/// Measures the time from its start until it holds every schedule partition
/// read to its end (`/health`: `schedules.live`) and until its catalog read
/// every partition (`schedules.catalog.live`), its resident set then and at
/// its peak, against the same daemon on an empty schedule topic; then
/// whether a schedule due `probeLeadMs` after the start fires on time (read
/// by a consumer of its own on the target topic).
///
/// On a broker of its own in this process: the librdkafka mock keeps only
/// the last 5 MB of each partition (no compaction), so the schedule topic
/// gets `partitions` partitions and the phase checks that no record was
/// dropped (each partition's low watermark still 0).
struct StartupBenchmark: Sendable {
    /// Schedules stored before the daemon starts.
    var stored = 1_000_000
    /// Partitions of the schedule topic (`[schedules] partitions`).
    var partitions = 64
    /// When the probe schedule is due, after the daemon's start.
    var probeLeadMs: Int64 = 30_000

    struct Measured: Sendable {
        var stored = 0
        var dropped = 0
        var tableLiveSeconds = 0.0
        var catalogLiveSeconds = 0.0
        var residentBytes = 0
        var peakResidentBytes = 0
        var probeDelayMs: Double?
    }

    func run(logger: Logger, report: @Sendable (String) -> Void) async throws -> (empty: Measured, full: Measured) {
        let broker = try EmbeddedBroker.start()
        defer { broker.shutdown() }
        for topic in ["task-scheduler.reports", "task-scheduler.pool"] {  // the defaults, as the daemon uses them
            try broker.createTopic(topic, partitions: 1) }
        let empty = try await measure(broker: broker, count: 0, name: "empty", logger: logger, report: report)
        let full = try await measure(broker: broker, count: stored, name: "full", logger: logger, report: report)
        return (empty, full)
    }

    private func measure(broker: EmbeddedBroker, count: Int, name: String, logger: Logger,
                         report: @Sendable (String) -> Void) async throws -> Measured {
        var measured = Measured()
        let scheduleTopic = "bench-startup-\(name)"
        let target = "bench-startup-fired-\(name)"
        try broker.createTopic(scheduleTopic, partitions: partitions)
        try broker.createTopic(target, partitions: 1)
        let filling = ContinuousClock.now
        try await fill(broker: broker, topic: scheduleTopic, target: target, count: count)
        let bytes = try FireDelayBenchmark.messageCount(bootstrap: broker.bootstrapServers, topic: scheduleTopic, partitions: partitions)
        measured.stored = bytes
        measured.dropped = try droppedRecords(bootstrap: broker.bootstrapServers, topic: scheduleTopic)
        if count > 0 {
            report(String(format: "startup: %d schedules written to %d partitions in %.1f s; the broker holds %d records, dropped %d (the mock keeps 5 MB per partition)",
                          count, partitions, Double((ContinuousClock.now - filling) / .milliseconds(1)) / 1000, bytes, measured.dropped))
        }
        let daemon = try BenchDaemon(broker: broker.bootstrapServers, scheduleTopic: scheduleTopic, partitions: partitions, maxSchedules: max(2 * count, 1000))
        defer { daemon.stop() }
        // The probe: the first schedule due, probeLeadMs after the start.
        let probeDue = ScheduleRig.nowMs + probeLeadMs
        let probe = try ScheduleRig.oneShotRecord(scheduleTopic: scheduleTopic, partitions: partitions, target: target,
                                                  message: "probe", key: "probe", dueMs: probeDue)
        let producer = try KafkaProducer.make(bootstrapServers: broker.bootstrapServers, deliveryTimeoutMs: 30_000, properties: [:])
        _ = try await producer.send(probe)
        await producer.close(timeoutMs: 5000)
        try daemon.start()
        let giveUp = ContinuousClock.now + .seconds(600)
        while measured.tableLiveSeconds == 0 || measured.catalogLiveSeconds == 0 {
            guard ContinuousClock.now < giveUp, daemon.isRunning else { throw BenchmarkError("startup: the daemon did not read \(scheduleTopic) within 600 s (log: \(daemon.logPath))") }
            try await Task.sleep(for: .milliseconds(50))
            guard let health = daemon.health() else { continue }
            let elapsed = daemon.secondsSinceStart
            if measured.tableLiveSeconds == 0 && health.tableLive { measured.tableLiveSeconds = elapsed }
            if measured.catalogLiveSeconds == 0 && health.catalogLive { measured.catalogLiveSeconds = elapsed }
        }
        measured.residentBytes = daemon.resident().current
        let reader = DedicatedThread(name: "bench-startup-probe")
        defer { reader.stop() }
        let bootstrap = broker.bootstrapServers
        measured.probeDelayMs = try await reader.run { () throws -> Double in
            Double(try Self.firstTimestamp(bootstrap: bootstrap, topic: target) - probeDue)
        }
        measured.peakResidentBytes = daemon.resident().peak
        report(String(format: "startup, %d stored schedules (%d partitions): every schedule partition read %.2f s after the daemon's start, its catalog %.2f s; resident %.1f MB then, peak %.1f MB; the probe due %.0f s after the start published %.0f ms after its due time (its CreateTime)",
                      count, partitions, measured.tableLiveSeconds, measured.catalogLiveSeconds, Double(measured.residentBytes) / 1e6,
                      Double(measured.peakResidentBytes) / 1e6, Double(probeLeadMs) / 1000, measured.probeDelayMs ?? -1))
        return measured
    }

    /// The timestamp (CreateTime: when the daemon published it) of the first
    /// message of `topic`, read by a consumer of its own; waits up to 120 s.
    private static func firstTimestamp(bootstrap: String, topic: String) throws -> Int64 {
        let consumer = try KafkaConsumer.make(bootstrapServers: bootstrap, groupID: "bench-probe-\(UUID().uuidString.prefix(8))", properties: [:])
        defer { consumer.close() }
        try consumer.assign([PartitionOffset(topic: topic, partition: 0, offset: PartitionOffset.beginning)])
        let giveUp = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < giveUp {
            guard let pointer = rd_kafka_consumer_poll(consumer.handle, 100) else { continue }
            // Read, then destroyed here (the library's owning type is internal).
            let view = KafkaMessageView(pointer: pointer)
            let timestamp = view.error == nil ? view.timestampMs : nil
            rd_kafka_message_destroy(pointer)
            if let timestamp { return timestamp }
        }
        throw BenchmarkError("startup: the probe did not fire within 120 s")
    }

    /// Writes `count` one-shot schedules due in a day and beyond (none fires during the phase).
    private func fill(broker: EmbeddedBroker, topic: String, target: String, count: Int) async throws {
        guard count > 0 else { return }
        let producer = try KafkaProducer.make(bootstrapServers: broker.bootstrapServers, deliveryTimeoutMs: 300_000,
                                              properties: ["queue.buffering.max.messages": "2000000", "linger.ms": "20"])
        let due = ScheduleRig.nowMs + 86_400_000
        var deliveries: [PendingDelivery] = []
        deliveries.reserveCapacity(count)
        for index in 0..<count {
            let record = try ScheduleRig.oneShotRecord(scheduleTopic: topic, partitions: partitions, target: target,
                                                       message: String(repeating: "x", count: 32), key: "k\(index % 100)", dueMs: due + Int64(index))
            deliveries.append(producer.enqueue(record))
        }
        for delivery in deliveries { _ = try await delivery.report() }
        await producer.close(timeoutMs: 5000)
    }

    /// Records the broker no longer holds: the sum of the partitions' low watermarks.
    private func droppedRecords(bootstrap: String, topic: String) throws -> Int {
        try FireDelayBenchmark.watermarks(bootstrap: bootstrap, topic: topic, partitions: partitions).low
    }
}

/// A release daemon as a process of its own, on the benchmark's broker,
/// firing schedules only (no worker group); its log in a temporary file.
final class BenchDaemon: @unchecked Sendable {
    // Threading rule: used from one task at a time (the phase's).
    let directory: URL
    private let process = Process()
    private var started = ContinuousClock.now
    private var address: String?

    var logPath: String { directory.appendingPathComponent("daemon.log").path }

    init(broker: String, scheduleTopic: String, partitions: Int, maxSchedules: Int) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("bench-daemon-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try """
            groups = []
            [kafka]
            brokers = ["\(broker)"]
            [api]
            listen = "127.0.0.1:0"
            [producer]
            interval_ms = 3600000
            [schedules]
            topic = "\(scheduleTopic)"
            group = "\(scheduleTopic)"
            partitions = \(partitions)
            max_schedules = \(maxSchedules)
            [log]
            level = "notice"
            """.write(to: directory.appendingPathComponent("config.toml"), atomically: true, encoding: .utf8)
        try "function generate() end\n".write(to: directory.appendingPathComponent("generate.lua"), atomically: true, encoding: .utf8)
        try "function process(msg) end\n".write(to: directory.appendingPathComponent("process.lua"), atomically: true, encoding: .utf8)
        let binary = (Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])).deletingLastPathComponent().appendingPathComponent("task-scheduler")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw BenchmarkError("startup: no daemon binary at \(binary.path) (swift build -c release)") }
        process.executableURL = binary
        process.arguments = ["--config", directory.appendingPathComponent("config.toml").path, "--scripts", directory.path]
        FileManager.default.createFile(atPath: logPath, contents: nil)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = FileHandle.nullDevice
    }

    func start() throws {
        started = .now
        try process.run()
    }

    var isRunning: Bool { process.isRunning }

    var secondsSinceStart: Double { Double((ContinuousClock.now - started) / .milliseconds(1)) / 1000 }

    /// SIGTERM, then waits for the exit.
    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: directory)
    }

    /// `GET /health`'s schedule fields, or nil while it does not answer.
    func health() -> (tableLive: Bool, catalogLive: Bool)? {
        guard let address = address ?? listenAddress() else { return nil }
        self.address = address
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        curl.arguments = ["curl", "-s", "-m", "2", "http://\(address)/health"]
        let output = Pipe()
        curl.standardOutput = output
        guard (try? curl.run()) != nil else { return nil }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        curl.waitUntilExit()
        guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let schedules = json["schedules"] as? [String: Any] else { return nil }
        let catalog = schedules["catalog"] as? [String: Any]
        return (schedules["live"] as? Bool ?? false, catalog?["live"] as? Bool ?? false)
    }

    /// The API's address, from the daemon's "task API listening" log line.
    private func listenAddress() -> String? {
        guard let log = try? String(contentsOfFile: logPath, encoding: .utf8),
              let line = log.split(separator: "\n").first(where: { $0.contains("task API listening") }),
              let field = line.split(separator: " ").first(where: { $0.hasPrefix("listen=") }) else { return nil }
        return String(field.dropFirst("listen=".count))
    }

    /// The daemon's resident set now and at its peak (/proc/<pid>/status: VmRSS, VmHWM).
    func resident() -> (current: Int, peak: Int) {
        let status = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8)) ?? ""
        func kib(_ field: String) -> Int {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }) else { return 0 }
            return (line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0) * 1024
        }
        return (kib("VmRSS"), kib("VmHWM"))
    }
}
