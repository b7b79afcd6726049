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
        subcommands: [Run.self, Broker.self, Check.self],
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

    @Option(help: "Log line format: text or json (one JSON object per line; overrides [log] format).")
    var logFormat: String?

    var chosenConfig: String? { config ?? configPath }

    func validate() throws {
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level '\(logLevel)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        if let logFormat, LogFormat(rawValue: logFormat) == nil {
            throw ValidationError("--log-format '\(logFormat)' is not one of text, json")
        }
    }
}

func bootstrapLogging(_ level: Logger.Level, format: LogFormat = .text) {
    LoggingSystem.bootstrap { label in
        switch format {
        case .text:
            var handler = DeferredLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        case .json:
            var handler = JSONLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

extension TaskSchedulerCommand {
    /// Runs the daemon.
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the scheduler daemon (the default).")
        @OptionGroup var options: CommonOptions

        func run() async throws {
            // Until the services run, SIGTERM ends the daemon at once with
            // status 0: nothing is held or pending yet (no group joined, no
            // task accepted). ServiceLifecycle replaces this handler when the
            // services start; from then on SIGTERM is the graceful shutdown.
            signal(SIGTERM) { _ in _exit(0) }
            let config: SchedulerConfig
            do {
                config = try ConfigLoader.load(path: options.chosenConfig)
            } catch {
                FileHandle.standardError.write(Data("task-scheduler: \(error)\n".utf8))
                throw ExitCode(2)
            }
            bootstrapLogging(Logger.Level(rawValue: options.logLevel ?? config.log.level) ?? .info,
                             format: LogFormat(rawValue: options.logFormat ?? config.log.format) ?? .text)
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

        @Option(name: .customLong("topic"), help: ArgumentHelp(
            "A topic to create at start, as NAME:PARTITIONS (repeatable). Topics first used by a client are created with 4 partitions.",
            valueName: "name:partitions"))
        var topics: [String] = []

        func validate() throws {
            for topic in topics where TopicSpec(topic) == nil {
                throw ValidationError("--topic '\(topic)' is not NAME:PARTITIONS (a topic name and a number of partitions from 1 to 10000)")
            }
        }

        func run() async throws {
            bootstrapLogging(.info)
            let logger = Logger(label: "task-scheduler.broker")
            let broker = try EmbeddedBroker.start(brokers: brokers)
            for spec in topics.compactMap(TopicSpec.init) {
                try broker.createTopic(spec.name, partitions: spec.partitions)
            }
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
            bootstrapLogging(Logger.Level(rawValue: options.logLevel ?? "warning") ?? .warning,
                             format: LogFormat(rawValue: options.logFormat ?? "text") ?? .text)
            let result = await ConfigCheck.run(
                configPath: options.chosenConfig, scriptsDirectory: options.scripts, logger: Logger(label: "task-scheduler.check"))
            for line in result.summary { print(line) }
            for problem in result.problems { FileHandle.standardError.write(Data("error: \(problem)\n".utf8)) }
            if !result.problems.isEmpty { throw ExitCode(1) }
            print("check passed")
        }
    }
}

/// `--topic NAME:PARTITIONS` of `task-scheduler broker`.
struct TopicSpec {
    let name: String
    let partitions: Int

    init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let count = Int(text[text.index(after: colon)...]),
              (1...10_000).contains(count), case let name = String(text[..<colon]), TopicName.problem(name) == nil
        else { return nil }
        self.name = name
        self.partitions = count
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
