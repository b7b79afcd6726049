import ArgumentParser
import Foundation
import Logging
@_spi(Benchmark) import Scheduler

/// `task-scheduler-bench`: steady-state throughput of the scheduler on one
/// embedded broker, next to librdkafka alone (the limit), kcat and a Python
/// peer, printed as ratios from one run. Kept out of the daemon and its
/// library: it reaches the library only through its `Benchmark` SPI.
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "task-scheduler-bench",
        abstract: "Benchmark on one embedded broker: librdkafka alone, kcat, the scheduler (no-op and emitting process()) and a Python peer; prints rates and ratios.")

    @Option(help: "Messages in the backlog.") var messages = 1_000_000
    @Option(help: "Partitions of the backlog topic.") var partitions = 16
    @Option(help: "Workers in the group.") var workers = 4
    @Option(help: "Slice length in ms (short: many handoffs).") var sliceMs = 50
    @Option(help: "Rounds of the fast readers: each runs once per round (medians reported).") var runs = 3
    @Option(help: "Messages the Python peer works through (default: all).") var peerMessages: Int?
    @Option(help: "Pairs of key-lane runs (lanes = 1, then lanes = 4), medians reported.") var lanePairs = 5
    @Option(help: "Schedules due within one minute in the schedules phase.") var schedules = 100_000
    @Option(help: "Partitions of the schedules phase's schedule topic.") var schedulePartitions = 16
    @Option(help: "Schedules stored before the daemon of the startup phase starts.") var storedSchedules = 1_000_000
    @Option(help: "Partitions of the startup phase's schedule topic (the mock keeps 5 MB of each).") var startupPartitions = 64
    @Option(help: "Comma-separated readers to run: librdkafka, kcat, floor, noop, batch, columns, emitting, python, handoff, schedules, lanes, startup (default: all but startup).") var readers: String?

    func run() async throws {
        bootstrapLogging(.warning)
        var bench = ThroughputBenchmark()
        bench.messages = messages
        bench.partitions = partitions
        bench.workers = workers
        bench.sliceMs = sliceMs
        bench.runs = runs
        bench.lanePairs = lanePairs
        bench.schedules = schedules
        bench.schedulePartitions = schedulePartitions
        bench.storedSchedules = storedSchedules
        bench.startupPartitions = startupPartitions
        bench.peerMessages = peerMessages ?? messages
        if let readers {
            bench.readers = Set(try readers.split(separator: ",").map { name in
                guard let reader = ThroughputBenchmark.Reader(rawValue: String(name)) else {
                    throw ValidationError("--readers: '\(name)' is not one of librdkafka, kcat, floor, noop, batch, columns, emitting, python, handoff, schedules, lanes, startup")
                }
                return reader
            })
        }
        let result = try await bench.run(logger: Logger(label: "bench")) { print($0) }
        func median(_ runs: [ThroughputBenchmark.Run]) -> Double? {
            runs.isEmpty ? nil : runs.map(\.rate).sorted()[runs.count / 2]
        }
        func rate(_ value: Double?) -> String { value.map { String(Int($0.rounded())) + " msg/s" } ?? "-" }
        func ratio(_ a: Double?, _ b: Double?) -> String {
            guard let a, let b, b > 0 else { return "-" }
            return String(format: "%.2fx", a / b)
        }
        let limit = median(result.librdkafka)
        let kcat = median(result.kcat)
        let noop = median(result.noop)
        let batch = median(result.batch)
        let emitting = median(result.emitting)
        let python = median(result.python)
        print("")
        print("== steady state, \(messages) messages, \(partitions) partitions, \(workers) workers, \(runs) interleaved round(s); rates from first message to last, medians")
        /// Each round's ratio of `runs` to `reference` (the readers of a round ran back to back), and their median.
        func rounds(_ runs: [ThroughputBenchmark.Run], to reference: [ThroughputBenchmark.Run]) -> String {
            let ratios = zip(runs, reference).map { $0.rate / $1.rate }
            guard !ratios.isEmpty else { return "" }
            return "rounds " + ratios.map { String(format: "%.2fx", $0) }.joined(separator: ", ")
                + String(format: ", median %.2fx", ratios.sorted()[ratios.count / 2])
        }
        let columns = median(result.columns)
        func row(_ label: String, _ value: Double?, _ runs: [ThroughputBenchmark.Run], _ note: String = "") -> String {
            label.padding(toLength: 34, withPad: " ", startingAt: 0) + rate(value).padding(toLength: 18, withPad: " ", startingAt: 0)
                + ratio(value, limit).padding(toLength: 7, withPad: " ", startingAt: 0)
                + [rounds(runs, to: result.librdkafka), note].filter { !$0.isEmpty }.joined(separator: "; ")
        }
        print("reader                            rate              of the limit, per round")
        print(row("librdkafka alone (the limit)", limit, []))
        print(row("no-op process(msg)", noop, result.noop, "target >= 0.70x"))
        print(row("no-op process_batch(msgs)", batch, result.batch,
                  "\(ratio(batch, columns)) process_columns (target >= 0.90x; \(rounds(result.batch, to: result.columns)))"))
        print(row("no-op process_columns(batch)", columns, result.columns))
        print(row("kcat", kcat, result.kcat))
        if let floor = result.luaFloor {
            // The most the no-op paths could reach on this machine's cores if
            // nothing but librdkafka's work and the Lua floor were spent.
            let cores = Double(ProcessInfo.processInfo.activeProcessorCount)
            let librdkafkaCPU = result.librdkafka.compactMap(\.cpuMicrosPerMessage).sorted().dropFirst(result.librdkafka.count / 2).first
            func ceiling(_ luaMicros: Double) -> String {
                guard let librdkafkaCPU, let limit else { return "-" }
                return ratio(cores * 1e6 / (librdkafkaCPU + luaMicros), limit)
            }
            print(String(format: "Lua floor (no Kafka, one thread), us per message: process(msg) %.3f driven per batch (%.3f one call each), process_batch(msgs) %.3f, process_columns(batch) %.3f; ",
                         floor.eachMicros, floor.processMicros, floor.batchMicros, floor.columnsMicros)
                  + "ceiling on \(Int(cores)) cores with librdkafka's CPU per message: process() \(ceiling(floor.eachMicros)), process_batch() \(ceiling(floor.batchMicros)), process_columns() \(ceiling(floor.columnsMicros)) of the limit")
        }
        print("scheduler, emitting process(): \(rate(emitting))  (\(ratio(emitting, python)) python peer, \(ratio(emitting, limit)) librdkafka)")
        print("python peer (consume/produce/flush/commit): \(rate(python))")
        print("emitted output: \(result.outputProblems.isEmpty ? "nothing lost, nothing doubled, per-key order kept" : result.outputProblems.joined(separator: ", "))")
        if let fired = result.schedulesFired, let p99 = result.fireDelayP99Ms, let reference = result.produceP99Ms {
            print(String(format: "schedules: %d of %d due within one minute fired; due to acknowledgement p50 %.3f ms, p95 %.3f ms, p99 %.3f ms (target < 50 ms), max %.3f ms; %.2fx the p99 of a single produce (%.3f ms); %.0f bytes of heap per schedule in the timer table",
                         fired, schedules, result.fireDelayP50Ms ?? 0, result.fireDelayP95Ms ?? 0, p99, result.fireDelayMaxMs ?? 0,
                         reference > 0 ? p99 / reference : 0, reference, result.bytesPerSchedule ?? 0))
            print("schedules output (independent reader): " + (result.fireProblems.isEmpty ? "every schedule fired once, none lost, none doubled" : result.fireProblems.joined(separator: ", ")))
        }
        if let (empty, full) = result.startup {
            let perSchedule = full.stored > 0 ? Double(full.residentBytes - empty.residentBytes) / Double(storedSchedules) : 0
            print(String(format: "startup with %d stored schedules (%d partitions, release daemon as a process): schedule partitions read %.2f s after start (empty topic: %.2f s), catalog %.2f s (%.2f s); resident %.0f MB (empty: %.0f MB, %.0f B per schedule), peak %.0f MB; first due (%.0f s after start) published %.0f ms after its due time; %@",
                         storedSchedules, startupPartitions, full.tableLiveSeconds, empty.tableLiveSeconds, full.catalogLiveSeconds, empty.catalogLiveSeconds,
                         Double(full.residentBytes) / 1e6, Double(empty.residentBytes) / 1e6, perSchedule, Double(full.peakResidentBytes) / 1e6,
                         30.0, full.probeDelayMs ?? -1,
                         full.dropped == 0 ? "the broker held every record" : "the broker dropped \(full.dropped) records (more partitions: --startup-partitions)"))
        }
        print("handoff gap over \(result.gapCount) handoffs (handoff phase: 4 partitions, 6 workers, slice 10 ms): p50 \(result.gapP50Ms.map { String(format: "%.3f", $0) } ?? "-") ms, p99 \(result.gapP99Ms.map { String(format: "%.3f", $0) } ?? "-") ms")
        let single = result.lanes.filter { $0.lanes == 1 }, multi = result.lanes.filter { $0.lanes > 1 }
        if let lanes = multi.first?.lanes, !single.isEmpty {
            let gaps = result.lanes.flatMap(\.gaps)
            let problems = result.lanes.flatMap(\.problems)
            // Each run of lanes = N against the lanes = 1 run just before it
            // (adjacent runs share the machine's conditions, which drift).
            let pairRatios = zip(single, multi).map { $1.run.rate / $0.run.rate }.sorted()
            print("key lanes, 1 partition, 1000 keys, process() ~100 us CPU + emit, \(workers) workers, medians of \(multi.count) runs: lanes = 1 \(rate(median(single.map(\.run)))), lanes = \(lanes) \(rate(median(multi.map(\.run)))): \(ratio(median(multi.map(\.run)), median(single.map(\.run)))); "
                  + "median of the \(pairRatios.count) pairs \(String(format: "%.2fx", pairRatios[pairRatios.count / 2])) (target >= 1.8x on 2 cores; pairs \(pairRatios.map { String(format: "%.2fx", $0) }.joined(separator: ", ")))")
            print("key lanes output: \(problems.isEmpty ? "nothing lost, nothing doubled, per-key order kept" : problems.joined(separator: ", ")); handoff gap over \(gaps.count) handoffs p99 \(ThroughputBenchmark.quantileMs(gaps, 0.99).map { String(format: "%.3f", $0) } ?? "-") ms")
        }
        if !result.outputProblems.isEmpty || !result.fireProblems.isEmpty || result.lanes.contains(where: { !$0.problems.isEmpty }) { throw ExitCode(1) }
    }
}

func bootstrapLogging(_ level: Logger.Level) {
    LoggingSystem.bootstrap { label in
        var handler = DeferredLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}
