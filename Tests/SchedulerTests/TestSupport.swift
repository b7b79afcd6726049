import Foundation
import Logging
@testable import Scheduler

/// One embedded broker for the whole test run: starting one per test would
/// multiply the consumer-group join time (~3 s each).
enum TestBroker {
    static let shared: EmbeddedBroker = {
        do {
            return try EmbeddedBroker.start()
        } catch {
            fatalError("cannot start the embedded broker for tests: \(error)")
        }
    }()

    /// A topic name no other test uses, created with `partitions` partitions.
    static func freshTopic(_ prefix: String, partitions: Int = 4) throws -> String {
        let topic = "\(prefix)-\(UUID().uuidString.prefix(8))"
        try shared.createTopic(topic, partitions: partitions)
        return topic
    }
}

/// The repository's own `scripts/` directory.
let repositoryScripts: String = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("scripts").path

/// A logger that only shows problems, so test output stays readable.
let quietLogger: Logger = {
    var logger = Logger(label: "test")
    logger.logLevel = .warning
    return logger
}()

/// Writes `files` (name → Lua source) into a new temporary scripts directory.
func makeScripts(_ files: [String: String]) throws -> String {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("scheduler-test-\(UUID().uuidString)").appendingPathComponent("scripts")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    for (name, source) in files {
        try source.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }
    return directory.path
}

/// A configuration for tests: the shared broker, an ephemeral API port, no
/// consumer groups, a pool topic of its own (so tests do not share a pool),
/// and a generate() tick so long it never fires unless a test asks for it.
func testConfig(intervalMs: Int = 3_600_000) -> SchedulerConfig {
    var config = SchedulerConfig()
    config.kafka.brokers = TestBroker.shared.bootstrapServers.split(separator: ",").map(String.init)
    config.api.listen = "127.0.0.1:0"
    // Short group sessions: the mock broker makes a member joining an emptied
    // group wait for about the session timeout.
    config.kafka.properties = ["session.timeout.ms": "3000", "heartbeat.interval.ms": "500"]
    config.producer.intervalMs = intervalMs
    config.producer.poolTopic = "pool-\(UUID().uuidString.prefix(8))"
    // As the daemon does on the embedded broker: one partition.
    try? TestBroker.shared.createTopic(config.producer.poolTopic, partitions: 1)
    // A schedule topic and group of its own, as the daemon creates on the
    // embedded broker; firing is off unless a test turns it on (a group
    // join per test app loads the shared broker for nothing).
    config.schedules.enabled = false
    config.schedules.topic = "schedules-\(UUID().uuidString.prefix(8))"
    config.schedules.group = config.schedules.topic
    try? TestBroker.shared.createTopic(config.schedules.topic, partitions: config.schedules.partitions)
    // Reports of its own: GET /cluster shows this app alone.
    config.cluster.reportsTopic = "reports-\(UUID().uuidString.prefix(8))"
    try? TestBroker.shared.createTopic(config.cluster.reportsTopic, partitions: 1)
    // A redrive ledger of its own: redrives of one test are not another's.
    config.cluster.redriveTopic = "redrive-\(UUID().uuidString.prefix(8))"
    try? TestBroker.shared.createTopic(config.cluster.redriveTopic, partitions: 1)
    config.groups = []
    return config
}

/// Reads every message of `topic` (partitions 0..<partitions) from the
/// beginning until `count` arrived or `timeout` passed, on a dedicated thread.
func readAll(topic: String, partitions: Int = 4, count: Int, timeout: Duration = .seconds(15)) async throws -> [ConsumedMessage] {
    let bootstrap = TestBroker.shared.bootstrapServers
    let thread = DedicatedThread(name: "test-reader")
    defer { thread.stop() }
    let deadline = ContinuousClock.now + timeout
    return try await thread.run {
        let consumer = try KafkaConsumer.make(bootstrapServers: bootstrap, groupID: "reader-\(UUID().uuidString)")
        defer { consumer.close() }
        try consumer.assign((0..<partitions).map {
            PartitionOffset(topic: topic, partition: Int32($0), offset: PartitionOffset.beginning)
        })
        var messages: [ConsumedMessage] = []
        while messages.count < count && ContinuousClock.now < deadline {
            if let message = try consumer.poll(timeoutMs: 100) { messages.append(message) }
        }
        return messages
    }
}
