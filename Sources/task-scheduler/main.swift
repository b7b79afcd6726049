import ArgumentParser
import Foundation
import Logging
import Scheduler
import ServiceLifecycle
import UnixSignals

/// The `task-scheduler` command line. All logic lives in the Scheduler library.
@main
struct TaskSchedulerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "task-scheduler",
        abstract: "Publishes tasks to Kafka and runs pools of consumer workers over them, scripted in Lua.",
        subcommands: [Run.self, Broker.self, Check.self, Bench.self],
        defaultSubcommand: Run.self)
}

/// Options shared by `run` and `check`.
struct CommonOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: "Path of the TOML configuration (default: ./config.toml if present).")
    var config: String?

    @Option(name: .customLong("config-path"), help: ArgumentHelp("Same as --config (the seed's flag).", visibility: .hidden))
    var configPath: String?

    @Option(help: "Directory holding generate.lua and the other scripts.")
    var scripts: String = "scripts"

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (overrides [log] level).")
    var logLevel: String?

    var chosenConfig: String? { config ?? configPath }

    func validate() throws {
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level '\(logLevel)' is not one of trace, debug, info, notice, warning, error, critical")
        }
    }
}

func bootstrapLogging(_ level: Logger.Level) {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}

extension TaskSchedulerCommand {
    /// Runs the daemon.
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the scheduler daemon (the default).")
        @OptionGroup var options: CommonOptions

        func run() async throws {
            let config: SchedulerConfig
            do {
                config = try ConfigLoader.load(path: options.chosenConfig)
            } catch {
                FileHandle.standardError.write(Data("task-scheduler: \(error)\n".utf8))
                throw ExitCode(2)
            }
            bootstrapLogging(Logger.Level(rawValue: options.logLevel ?? config.log.level) ?? .info)
            let logger = Logger(label: "task-scheduler")
            // SIGINT/SIGTERM shut down gracefully (stop intake, finish in-flight
            // messages, commit, flush); a second SIGINT during that exits at once.
            let interrupts = await UnixSignalsSequence(trapping: .sigint)
            Task.detached {
                var count = 0
                for await _ in interrupts {
                    count += 1
                    if count >= 2 {
                        logger.warning("second SIGINT: exiting without finishing the shutdown")
                        Foundation.exit(130)
                    }
                }
            }
            do {
                let app = try await buildApplication(LaunchOptions(config: config, scriptsDirectory: options.scripts, logger: logger))
                try await app.runService()
            } catch {
                logger.critical("task-scheduler stopped: \(error)")
                throw ExitCode(1)
            }
        }
    }

    /// Runs only the embedded broker.
    struct Broker: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run only the embedded Kafka broker; prints its bootstrap servers as the first line of stdout.")

        @Option(help: "Number of brokers in the embedded cluster.")
        var brokers: Int = 1

        func run() async throws {
            bootstrapLogging(.info)
            let logger = Logger(label: "task-scheduler.broker")
            let broker = try EmbeddedBroker.start(brokers: brokers)
            // Written straight to the file descriptor so a pipe reader sees it at once.
            FileHandle.standardOutput.write(Data((broker.bootstrapServers + "\n").utf8))
            logger.notice("embedded Kafka broker running (in memory, lost on exit); Ctrl-C to stop",
                          metadata: ["bootstrap_servers": "\(broker.bootstrapServers)"])
            let group = ServiceGroup(configuration: .init(
                services: [BrokerHolder(broker: broker)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        }
    }

    /// Validates configuration and scripts.
    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate the configuration and compile the scripts without starting anything.")
        @OptionGroup var options: CommonOptions

        func run() async throws {
            bootstrapLogging(Logger.Level(rawValue: options.logLevel ?? "warning") ?? .warning)
            let result = await ConfigCheck.run(
                configPath: options.chosenConfig, scriptsDirectory: options.scripts, logger: Logger(label: "task-scheduler.check"))
            for line in result.summary { print(line) }
            for problem in result.problems { FileHandle.standardError.write(Data("error: \(problem)\n".utf8)) }
            if !result.problems.isEmpty { throw ExitCode(1) }
            print("check passed")
        }
    }
}

/// Holds the broker until SIGINT/SIGTERM.
struct BrokerHolder: Service {
    let broker: EmbeddedBroker
    func run() async throws {
        try? await gracefulShutdown()
        broker.shutdown()
    }
}

extension TaskSchedulerCommand {
    /// Measures steady-state throughput against librdkafka, kcat and a Python peer.
    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Benchmark on one embedded broker: librdkafka alone, kcat, the scheduler (no-op and emitting process()) and a Python peer; prints rates and ratios.")

        @Option(help: "Messages in the backlog.") var messages = 1_000_000
        @Option(help: "Partitions of the backlog topic.") var partitions = 16
        @Option(help: "Workers in the group.") var workers = 4
        @Option(help: "Slice length in ms (short: many handoffs).") var sliceMs = 50
        @Option(help: "Runs of the fast readers (medians reported).") var runs = 3
        @Option(help: "Messages the Python peer works through (default: all).") var peerMessages: Int?
        @Option(help: "Comma-separated readers to run: librdkafka, kcat, noop, batch, emitting, python, handoff, schedules (default: all).") var readers: String?

        func run() async throws {
            bootstrapLogging(.warning)
            var bench = ThroughputBenchmark()
            bench.messages = messages
            bench.partitions = partitions
            bench.workers = workers
            bench.sliceMs = sliceMs
            bench.runs = runs
            bench.peerMessages = peerMessages ?? messages
            if let readers {
                bench.readers = Set(try readers.split(separator: ",").map { name in
                    guard let reader = ThroughputBenchmark.Reader(rawValue: String(name)) else {
                        throw ValidationError("--readers: '\(name)' is not one of librdkafka, kcat, noop, batch, emitting, python, handoff, schedules")
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
            print("== steady state, \(messages) messages, \(partitions) partitions, medians (rates from first message to last)")
            print("librdkafka alone (limit):      \(rate(limit))")
            print("kcat:                          \(rate(kcat))  (\(ratio(kcat, limit)) librdkafka)")
            print("scheduler, no-op process():    \(rate(noop))  (\(ratio(noop, limit)) librdkafka, \(ratio(noop, kcat)) kcat)")
            print("scheduler, no-op process_batch(): \(rate(batch))  (\(ratio(batch, limit)) librdkafka, \(ratio(batch, kcat)) kcat)")
            print("scheduler, emitting process(): \(rate(emitting))  (\(ratio(emitting, python)) python peer, \(ratio(emitting, limit)) librdkafka)")
            print("python peer (consume/produce/flush/commit): \(rate(python))")
            print("emitted output: \(result.outputProblems.isEmpty ? "nothing lost, nothing doubled, per-key order kept" : result.outputProblems.joined(separator: ", "))")
            print("handoff gap over \(result.gapCount) handoffs (handoff phase: 4 partitions, 6 workers, slice 10 ms): p50 \(result.gapP50Ms.map { String(format: "%.3f", $0) } ?? "-") ms, p99 \(result.gapP99Ms.map { String(format: "%.3f", $0) } ?? "-") ms")
            if let fired = result.schedulesFired, let p99 = result.fireDelayP99Ms, let reference = result.produceP99Ms {
                print(String(format: "schedules: %d of 10000 due within one minute fired; due to acknowledgement p50 %.3f ms, p99 %.3f ms (target < 50 ms); %.2fx the p99 of a single produce (%.3f ms); %.0f bytes per schedule in the timer table",
                             fired, result.fireDelayP50Ms ?? 0, p99, reference > 0 ? p99 / reference : 0, reference, result.bytesPerSchedule ?? 0))
            }
            if !result.outputProblems.isEmpty { throw ExitCode(1) }
        }
    }
}
