import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import Logging
import Synchronization
@testable import Scheduler

/// Collects log records so tests can see what scripts logged (`scheduler.log`)
/// and which warnings the daemon gave.
final class LogCapture: Sendable {
    struct Record: Sendable {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]
        let at = ContinuousClock.now
    }

    private let records = Mutex<[Record]>([])
    let echo: Bool

    init(echo: Bool = false) {
        self.echo = echo
    }

    var logger: Logger {
        Logger(label: "capture") { [self] _ in Handler(capture: self) }
    }

    func append(_ record: Record) {
        if echo { FileHandle.standardError.write(Data("[capture] \(record.level) \(record.message) \(record.metadata)\n".utf8)) }
        records.withLock { $0.append(record) }
    }

    var all: [Record] { records.withLock { $0 } }

    /// Records whose message starts with `prefix`.
    func lines(startingWith prefix: String) -> [Record] { all.filter { $0.message.hasPrefix(prefix) } }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var merged: [String: String] = [:]
            for (key, value) in metadata { merged[key] = "\(value)" }
            for (key, value) in event.metadata ?? [:] { merged[key] = "\(value)" }
            capture.append(Record(level: event.level, message: "\(event.message)", metadata: merged))
        }
    }
}

/// One processed message as reported by the test scripts' `seen` log line:
/// `seen <partition> <offset> <key> <payload>`.
struct Seen: Hashable {
    let partition: Int32
    let offset: Int64
    let key: String
    let payload: String
    let worker: String

    init?(_ record: LogCapture.Record) {
        let parts = record.message.split(separator: " ", maxSplits: 4).map(String.init)
        guard parts.count == 5, parts[0] == "seen", let partition = Int32(parts[1]), let offset = Int64(parts[2]) else { return nil }
        self.partition = partition
        self.offset = offset
        self.key = parts[3]
        self.payload = parts[4]
        self.worker = record.metadata[LogKey.worker] ?? "?"
    }
}

/// A process.lua that logs `seen <partition> <offset> <key> <payload>` for
/// each message, after burning `seconds` of CPU (0: none), so that a run
/// crosses many slice boundaries or lasts long enough for something to happen.
func seenProcess(busySeconds seconds: Double = 0) -> String {
    """
    function process(msg)
      local started = os.clock()
      while os.clock() - started < \(seconds) do end
      scheduler.log("notice", "seen " .. msg.partition .. " " .. msg.offset .. " " .. tostring(msg.key) .. " " .. msg.payload)
    end
    """
}

/// `seenProcess()` without the busy wait.
let seenProcessScript = seenProcess()

/// Publishes `count` messages to `topic`, keyed `k<i % keys>`, with payload
/// `<key>:<sequence within key>`, and waits for every acknowledgement.
func publishKeyed(topic: String, count: Int, keys: Int, startSequence: Int = 0) async throws {
    let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 10_000)
    var deliveries: [PendingDelivery] = []
    for index in startSequence..<(startSequence + count) {
        let key = "k\(index % keys)"
        deliveries.append(producer.enqueue(OutgoingMessage(topic: topic, key: Array(key.utf8), value: Array("\(key):\(index / keys)".utf8))))
    }
    for delivery in deliveries { _ = try await delivery.report() }
    await producer.close(timeoutMs: 5000)
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes. A
/// timeout is recorded as a test issue at the caller's line, so a wait whose
/// result is not checked still fails the test when the event never comes.
@discardableResult
func eventually(
    timeout: Duration = .seconds(30), sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    if try await condition() { return true }
    Issue.record("the awaited condition did not hold within \(timeout)", sourceLocation: sourceLocation)
    return false
}

/// A group config for pool tests.
func poolConfig(topics: [String], workers: Int, sliceMs: Int, group: String = "pool-\(UUID().uuidString.prefix(6))") -> SchedulerConfig {
    var config = testConfig()
    config.groups = [GroupConfig(name: group, topics: topics, workers: workers, sliceMs: sliceMs)]
    return config
}

/// Runs the real application with `logger` until `body` returns.
func withPool<T: Sendable>(
    _ config: SchedulerConfig, scripts: String, logger: Logger,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let app = try await buildApplication(LaunchOptions(config: config, scriptsDirectory: scripts, logger: logger))
    return try await app.test(.live) { _ in try await body() }
}

/// Runs the real application with `logger` until `body` returns; `body`
/// gets the HTTP client (for `/groups`).
func withPoolClient<T: Sendable>(
    _ config: SchedulerConfig, scripts: String, logger: Logger,
    _ body: @escaping @Sendable (any TestClientProtocol) async throws -> T
) async throws -> T {
    let app = try await buildApplication(LaunchOptions(config: config, scriptsDirectory: scripts, logger: logger))
    return try await app.test(.live) { client in try await body(client) }
}

/// Waits until the groups have committed `messages` offsets in all and every
/// partition is committed to its end (lag 0, committed = next offset). From
/// then on nothing is processed again without a rebalance: counts taken
/// after this are final, with no sleep to guess how long "after" is.
@discardableResult
func awaitCommittedToEnd(
    _ client: any TestClientProtocol, messages: Int, timeout: Duration = .seconds(30),
    sourceLocation: SourceLocation = #_sourceLocation
) async throws -> Bool {
    try await eventually(timeout: timeout, sourceLocation: sourceLocation) {
        let response = try await client.execute(uri: "/groups", method: .get, headers: [:], body: nil)
        let groups = try JSONDecoder().decode([GroupView].self, from: Data(buffer: response.body))
        let partitions = groups.flatMap(\.partitions)
        return !partitions.isEmpty
            && partitions.reduce(Int64(0)) { $0 + max(0, $1.committed) } == Int64(messages)
            && partitions.allSatisfy { $0.lag == 0 && $0.committed == $0.next_offset }
    }
}

/// The offsets committed by the group named in a `daemonConfig` file, per
/// partition (-1 where nothing was committed): where a restart resumes.
func committedOffsets(configFile: URL, topic: String, partitions: Int) async throws -> [Int64] {
    let groupName = try String(contentsOf: configFile, encoding: .utf8).split(separator: "\n")
        .first { $0.trimmingCharacters(in: .whitespaces).hasPrefix("name = ") }
        .map { $0.split(separator: "\"")[1] }.map(String.init)
    let group = try #require(groupName)
    return try await offThePool {
        let observer = try KafkaConsumer.make(bootstrapServers: TestBroker.shared.bootstrapServers, groupID: group)
        defer { observer.close() }
        let asked = (0..<partitions).map { PartitionOffset(topic: topic, partition: Int32($0), offset: -1) }
        return try observer.committed(asked, timeoutMs: 5000).sorted { $0.partition < $1.partition }.map(\.offset)
    }
}
