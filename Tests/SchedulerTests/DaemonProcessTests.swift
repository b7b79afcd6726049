import Foundation
import Testing
@testable import Scheduler

/// The built `task-scheduler` executable (`swift build` puts it next to the tests).
let daemonBinary = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent(".build/debug/task-scheduler")

/// Starts `process`, one launch at a time in this test process: Foundation's
/// `Process.run()` crashed (a bad pointer in its memmove) when suites
/// launched daemons from several threads at once.
func launch(_ process: Process) throws {
    try launchLock.withLock { try process.run() }
}
private let launchLock = NSLock()

/// A daemon process with its stderr collected.
final class DaemonProcess: @unchecked Sendable {
    // Threading rule: `output` is guarded by `lock`; the rest is set in init.
    let process = Process()
    private let lock = NSLock()
    private var output = ""

    init(_ arguments: [String]) throws {
        process.executableURL = daemonBinary
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = errors
        errors.fileHandleForReading.readabilityHandler = { [self] handle in
            let text = String(decoding: handle.availableData, as: UTF8.self)
            lock.withLock { output += text }
        }
        try launch(process)
    }

    var log: String { lock.withLock { output } }
    var lines: [Substring] { log.split(separator: "\n") }

    /// Sends SIGTERM and waits up to `timeout` for the exit; nil if it did not exit.
    func terminate(timeout: Duration = .seconds(15)) async -> Int32? {
        process.terminate()
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning {
            process.interrupt()
            return nil
        }
        return process.terminationStatus
    }
}

/// Writes a config file for a daemon process on the shared broker (API on an
/// ephemeral port, short group sessions) beside the `scripts` directory.
/// `kafka`: more `[kafka]` keys; `properties`: the `[kafka.properties]`.
func daemonConfig(next scripts: String, topic: String, group: String, workers: Int, sliceMs: Int,
                  groupExtra: String = "", tail: String = "", schedules: Bool = false, kafka: String = "",
                  properties: [String: String] = ["session.timeout.ms": "3000", "heartbeat.interval.ms": "500"]) throws -> URL {
    let file = URL(fileURLWithPath: scripts).deletingLastPathComponent().appendingPathComponent("\(group).toml")
    try TestBroker.shared.createTopic("\(group)-schedules", partitions: 4)
    // The default reports topic, shared by the daemon tests that name none of their own.
    try TestBroker.shared.createTopic(ClusterSection().reportsTopic, partitions: 1)
    try """
        [kafka]
        brokers = ["\(TestBroker.shared.bootstrapServers)"]
        \(kafka)
        [kafka.properties]
        \(properties.sorted { $0.key < $1.key }.map { "\"\($0.key)\" = \"\($0.value)\"" }.joined(separator: "\n"))
        [api]
        listen = "127.0.0.1:0"
        [schedules]
        enabled = \(schedules)
        topic = "\(group)-schedules"
        group = "\(group)-schedules"
        [[groups]]
        name = "\(group)-\(UUID().uuidString.prefix(6))"
        topics = ["\(topic)"]
        workers = \(workers)
        slice_ms = \(sliceMs)
        \(groupExtra)
        \(tail)
        """.write(to: file, atomically: true, encoding: .utf8)
    return file
}

@Suite("The daemon as a process", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct DaemonProcessTests {
    @Test("SIGTERM exits 0 within seconds after committing; a restart processes nothing twice; the log level is respected")
    func terminateAndRestart() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: daemonBinary.path), "build the executable first (make test does)")
        let topic = try TestBroker.freshTopic("daemon", partitions: 2)
        let scripts = try makeScripts([
            "generate.lua": idleGenerate,
            "process.lua": "function process(msg) scheduler.log('notice', 'seen ' .. msg.partition .. ' ' .. msg.offset .. ' x ' .. msg.payload) end",
        ])
        let configFile = try daemonConfig(next: scripts, topic: topic, group: "daemon", workers: 2, sliceMs: 20)
        try await publishKeyed(topic: topic, count: 300, keys: 10)

        let first = try DaemonProcess(["--config", configFile.path, "--scripts", scripts, "--log-level", "info"])
        await eventually { first.lines.filter { $0.contains("] seen ") }.count >= 300 }
        let started = ContinuousClock.now
        let status = await first.terminate()
        #expect(status == 0, "exit status \(String(describing: status)); log:\n\(first.log.suffix(2000))")
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(first.lines.filter { $0.contains("] seen ") }.count == 300)
        #expect(first.log.contains("partitions assigned"))  // an info line, shown at info

        try await publishKeyed(topic: topic, count: 100, keys: 10, startSequence: 300)
        let second = try DaemonProcess(["--config", configFile.path, "--scripts", scripts, "--log-level", "notice"])
        // No wait after this: a partition is processed in offset order, so an
        // old message processed again would show up before the new ones.
        await eventually { second.lines.filter { $0.contains("] seen ") }.count >= 100 }
        #expect(await second.terminate() == 0)
        let seen = second.lines.filter { $0.contains("] seen ") }
        #expect(seen.count == 100, "the restart processed \(seen.count) messages")
        #expect(seen.allSatisfy { line in Int(line.split(separator: ":").last ?? "") ?? 0 >= 30 })
        #expect(!second.log.contains("partitions assigned"))  // info is below notice
        #expect(!second.log.contains(" info "))
    }
}

@Suite("The daemon killed", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct DaemonKillTests {
    @Test("SIGKILL mid-stream, then a restart: every message processed at least once, duplicates counted, per-key order of first processing kept")
    func killAndRestart() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: daemonBinary.path), "build the executable first (make test does)")
        let topic = try TestBroker.freshTopic("kill", partitions: 4)
        let total = 3000
        try await publishKeyed(topic: topic, count: total, keys: 32)
        let scripts = try makeScripts([
            "generate.lua": idleGenerate,
            "process.lua": seenProcess(busySeconds: 0.0005),
        ])
        let configFile = try daemonConfig(next: scripts, topic: topic, group: "kill", workers: 3, sliceMs: 30)
        func seen(_ daemon: DaemonProcess) -> [String] {
            daemon.lines.compactMap { line in line.range(of: "] seen ").map { String(line[$0.upperBound...]) } }
        }
        let first = try DaemonProcess(["--config", configFile.path, "--scripts", scripts])
        await eventually { seen(first).count >= total / 3 }
        kill(first.process.processIdentifier, SIGKILL)
        first.process.waitUntilExit()
        let beforeKill = seen(first)
        // What the dead daemon had committed: the restart resumes there, so
        // exactly what it had finished at or above those positions is redone.
        let committed = try await committedOffsets(configFile: configFile, topic: topic, partitions: 4)
        let finishedAbove = beforeKill.filter { line in
            let parts = line.split(separator: " ")
            guard parts.count == 4, let partition = Int(parts[0]), let offset = Int64(parts[1]) else { return false }
            return offset >= committed[partition]
        }.count

        let second = try DaemonProcess(["--config", configFile.path, "--scripts", scripts])
        await eventually(timeout: .seconds(60)) { Set(beforeKill + seen(second)).count >= total }
        #expect(await second.terminate() == 0)
        let all = beforeKill + seen(second)
        let distinct = Set(all)
        #expect(distinct.count == total, "lost \(total - distinct.count)")
        let duplicates = all.count - distinct.count
        print("SIGKILL after \(beforeKill.count) messages (committed \(committed), \(finishedAbove) finished above): \(duplicates) processed again after the restart")
        #expect(committed.contains { $0 > 0 }, "nothing was committed before the kill: \(committed)")
        #expect(duplicates == finishedAbove, "processed again \(duplicates); finished above the committed positions \(finishedAbove)")
        // Per key, the first processing of each message is in the key's order.
        var firstOrder: [String: [Int]] = [:]
        var done: Set<String> = []
        for line in all where done.insert(line).inserted {
            let parts = line.split(separator: " ")
            guard parts.count == 4 else { continue }
            let payload = parts[3].split(separator: ":")
            firstOrder[String(payload[0]), default: []].append(Int(payload[1]) ?? -1)
        }
        for (key, order) in firstOrder { #expect(order == order.sorted(), "key \(key) out of order") }
    }

    @Test("SIGKILL while emits are in flight, then a restart: every input's emitted task reaches its topic")
    func killMidPipeline() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: daemonBinary.path), "build the executable first (make test does)")
        let topic = try TestBroker.freshTopic("kill-emit", partitions: 4)
        let output = try TestBroker.freshTopic("kill-emit-out", partitions: 4)
        let total = 3000
        try await publishKeyed(topic: topic, count: total, keys: 32)
        let scripts = try makeScripts([
            "generate.lua": idleGenerate,
            "process.lua": """
                function process(msg)
                  local t = os.clock() while os.clock() - t < 0.0003 do end
                  scheduler.emit("\(output)", msg.partition .. ":" .. msg.offset, msg.key)
                  scheduler.log("notice", "seen " .. msg.partition .. " " .. msg.offset)
                end
                """,
        ])
        let configFile = try daemonConfig(next: scripts, topic: topic, group: "kill-emit", workers: 3, sliceMs: 30)
        func seen(_ daemon: DaemonProcess) -> Int { daemon.lines.filter { $0.contains("] seen ") }.count }
        let first = try DaemonProcess(["--config", configFile.path, "--scripts", scripts])
        #expect(await eventually { seen(first) >= total / 3 })
        kill(first.process.processIdentifier, SIGKILL)
        first.process.waitUntilExit()

        let second = try DaemonProcess(["--config", configFile.path, "--scripts", scripts])
        var emitted: [ConsumedMessage] = []
        let complete = try await eventually(timeout: .seconds(60)) {
            emitted = try await readAll(topic: output, partitions: 4, count: Int.max, timeout: .seconds(2))
            return Set(emitted.map { $0.value.utf8String }).count >= total
        }
        #expect(await second.terminate() == 0)
        let distinct = Set(emitted.map { $0.value.utf8String })
        #expect(complete && distinct.count == total, "lost \(total - distinct.count) emitted tasks")
        print("SIGKILL mid-pipeline: \(emitted.count) tasks emitted for \(total) inputs (\(emitted.count - distinct.count) emitted again)")
    }
}
