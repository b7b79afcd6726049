import Foundation
import Testing
@testable import Scheduler

/// The repository root (where the Makefile is).
let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A TCP port held by the test: a socket listening on 127.0.0.1, as a first
/// daemon's API would.
final class HeldPort {
    private var fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bind(fd, socketAddress, length) == 0 && listen(fd, 4) == 0
                    && getsockname(fd, socketAddress, &length) == 0
            }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        try #require(bound, "could not hold a port: errno \(errno)")
    }

    /// Frees the port.
    func release() {
        if fd >= 0 { close(fd) }
        fd = -1
    }

    deinit { release() }
}

/// Runs `executable` with `arguments` in `directory`; its exit status and output (stdout and stderr).
func runTool(_ executable: String, _ arguments: [String], in directory: URL = repositoryRoot) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.currentDirectoryURL = directory
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try launch(process)
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

@Suite("Startup: a taken API port, make check", .sharesMachine)
struct StartupTests {
    @Test("a second daemon with the API port taken exits at once with one line naming the address and [api] listen, before connecting to Kafka",
          .timeLimit(.minutes(2)))
    func portTaken() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: daemonBinary.path), "build the executable first (make test does)")
        let held = try HeldPort()
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": "function process(msg) end"])
        let configFile = URL(fileURLWithPath: scripts).deletingLastPathComponent().appendingPathComponent("taken.toml")
        // Nothing listens on port 1: a daemon that connected would log librdkafka's connection errors.
        try """
            [kafka]
            brokers = ["127.0.0.1:1"]
            [api]
            listen = "127.0.0.1:\(held.port)"
            """.write(to: configFile, atomically: true, encoding: .utf8)
        let started = ContinuousClock.now
        let daemon = try DaemonProcess(["--config", configFile.path, "--scripts", scripts])
        let exited = await eventually(timeout: .seconds(60)) { !daemon.process.isRunning }
        if !exited { _ = await daemon.terminate() }
        #expect(exited, "still running; log:\n\(daemon.log.suffix(2000))")
        #expect(daemon.process.terminationStatus != 0)
        #expect(ContinuousClock.now - started < .seconds(30))
        // The pipe may deliver the last line just after the exit.
        await eventually(timeout: .seconds(5)) { daemon.log.contains("[api] listen") }
        let lines = daemon.lines
        #expect(lines.count == 1, "expected one line, got:\n\(daemon.log.prefix(3000))")
        let line = String(lines.first ?? "")
        #expect(line.contains("[api] listen = \"127.0.0.1:\(held.port)\""), "\(line)")
        #expect(line.contains("address already in use"), "\(line)")
        #expect(!daemon.log.contains("rdkafka") && !daemon.log.contains("127.0.0.1:1/"))
    }

    @Test("the check binds nothing: a free port passes, port 0 passes, an unresolvable host is named")
    func checkUnit() throws {
        let held = try HeldPort()
        #expect(throws: ListenError.self) { try ListenCheck.check(host: "127.0.0.1", port: held.port, address: "127.0.0.1:\(held.port)") }
        // Any address on the port is taken too (0.0.0.0 covers 127.0.0.1).
        #expect(throws: ListenError.self) { try ListenCheck.check(host: "0.0.0.0", port: held.port, address: "0.0.0.0:\(held.port)") }
        try ListenCheck.check(host: "127.0.0.1", port: 0, address: "127.0.0.1:0")
        let free = try HeldPort()
        let port = free.port
        free.release()
        // Freed: passes, and twice (the check releases what it binds).
        try ListenCheck.check(host: "127.0.0.1", port: port, address: "127.0.0.1:\(port)")
        try ListenCheck.check(host: "127.0.0.1", port: port, address: "127.0.0.1:\(port)")
        do {
            try ListenCheck.check(host: "no-such-host.invalid", port: 5000, address: "no-such-host.invalid:5000")
            Issue.record("an unresolvable host passed")
        } catch let error as ListenError {
            #expect(error.description.contains("[api] listen = \"no-such-host.invalid:5000\""))
            #expect(error.description.contains("does not resolve"))
        }
    }

    @Test("make check takes run's CONFIG and ARGS and uses the release build (no debug build)")
    func makeCheck() throws {
        let make = try #require(["/usr/bin/make", "/bin/make"].first { FileManager.default.isExecutableFile(atPath: $0) })
        let result = try runTool(make, ["-n", "check", "CONFIG=/tmp/some.toml", "ARGS=--scripts /tmp/some-scripts"])
        #expect(result.status == 0, "\(result.output)")
        let commands = result.output.split(separator: "\n")
        #expect(commands.contains { $0.hasPrefix(".build/release/task-scheduler check --config /tmp/some.toml --scripts /tmp/some-scripts") },
                "\(result.output)")
        let builds = commands.filter { $0.contains("swift build") || $0.contains(" build") && $0.hasPrefix("swift") }
        #expect(!builds.isEmpty && builds.allSatisfy { $0.contains("-c release") }, "\(builds)")
        #expect(!result.output.contains(".build/debug"))
    }
}
