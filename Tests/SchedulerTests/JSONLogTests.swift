import Foundation
import Logging
import Synchronization
import Testing
@testable import Scheduler

/// Parses one log line as a JSON object (Foundation's parser), failing the test if it is not one.
private func parsed(_ line: some StringProtocol, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
    let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
    return try #require(object as? [String: Any], "not a JSON object: \(line)", sourceLocation: sourceLocation)
}

/// Lines written by a `JSONLogHandler`.
private final class CapturedLines: Sendable {
    let text = Mutex("")
    var lines: [String] { text.withLock { $0.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init) } }
    func logger(_ label: String = "task-scheduler", provider: Logger.MetadataProvider? = nil) -> Logger {
        Logger(label: label) { label in
            var handler = JSONLogHandler(label: label) { line in self.text.withLock { $0 += line } }
            handler.logLevel = .info
            handler.metadataProvider = provider
            return handler
        }
    }
}

@Suite("JSON log lines", .sharesMachine)
struct JSONLogTests {
    /// Messages that must come back unchanged through a JSON parser.
    static let awkward: [String] = [
        "plain",
        "he said \"hi\" and left",
        "back\\slash \\n not a newline",
        "two\nlines\r\nand a\ttab",
        "controls \u{01}\u{07}\u{08}\u{0C}\u{1B}[31m\u{1F} and DEL \u{7F}",
        "line\u{2028}separator\u{2029}paragraph",
        "unicode: é 漢字 🚀",
        "",
        "{\"looks\": \"like json\"}",
    ]

    @Test("each awkward message is one line that a JSON parser reads back unchanged", arguments: awkward)
    func escaping(message: String) throws {
        let line = JSONLogLine.render(time: Date(), level: .warning, label: "task-scheduler", message: message,
                                      metadata: ["note": .string(message)])
        #expect(line.hasSuffix("}\n"))
        #expect(line.dropLast().allSatisfy { !$0.isNewline }, "the line breaks: \(line.debugDescription)")
        #expect(!line.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" }, "a raw control character: \(line.debugDescription)")
        let object = try parsed(line)
        #expect(object["message"] as? String == message)
        #expect(object["note"] as? String == message)
        #expect(object["level"] as? String == "warning")
        #expect(object["logger"] as? String == "task-scheduler")
    }

    @Test("the fixed fields come first; metadata keeps arrays and objects; a metadata key named like a fixed field is renamed")
    func fields() throws {
        let time = Date(timeIntervalSince1970: 1_796_459_933.0456)
        let line = JSONLogLine.render(time: time, level: .info, label: "x", message: "m", metadata: [
            "partition": "3", "list": .array(["a", .string("b\"")]), "nested": .dictionary(["k": "v", "n": .array([])]),
            "message": "from metadata", "level": "not the level",
        ])
        #expect(line.hasPrefix("{\"timestamp\":\"2026-12-05T08:38:53.045Z\",\"level\":\"info\",\"logger\":\"x\",\"message\":\"m\","), "\(line)")
        let object = try parsed(line)
        #expect(object["message"] as? String == "m")
        #expect(object["level"] as? String == "info")
        #expect(object["metadata.message"] as? String == "from metadata")
        #expect(object["metadata.level"] as? String == "not the level")
        #expect(object["partition"] as? String == "3")
        #expect(object["list"] as? [String] == ["a", "b\""])
        let nested = try #require(object["nested"] as? [String: Any])
        #expect(nested["k"] as? String == "v")
        #expect((nested["n"] as? [Any])?.isEmpty == true)
    }

    @Test("timestamps are RFC 3339 UTC with milliseconds", arguments: [
        (0.0, "1970-01-01T00:00:00.000Z"), (1_796_459_933.999_9, "2026-12-05T08:38:53.999Z"), (951_782_400.5, "2000-02-29T00:00:00.500Z"),
    ])
    func timestamps(seconds: Double, expected: String) {
        #expect(JSONLogLine.timestamp(Date(timeIntervalSince1970: seconds)) == expected)
    }

    @Test("the handler writes the logger's, the provider's and the call's metadata (the call's winning), the error, and respects the level")
    func handler() throws {
        let captured = CapturedLines()
        var logger = captured.logger(provider: Logger.MetadataProvider { ["trace": "t-1", "worker": "from-provider"] })
        logger[metadataKey: "worker"] = "w1"
        logger[metadataKey: "group"] = "g"
        logger.notice("first", metadata: ["offset": "7", "group": "call"])
        logger.debug("below the level")
        logger.error("failed", error: ConfigError(file: "f.toml", key: "k", line: 2, message: "bad"))
        let lines = captured.lines
        try #require(lines.count == 2, "\(lines)")
        let first = try parsed(lines[0])
        #expect(first["message"] as? String == "first" && first["level"] as? String == "notice")
        #expect(first["worker"] as? String == "from-provider")
        #expect(first["trace"] as? String == "t-1")
        #expect(first["group"] as? String == "call")
        #expect(first["offset"] as? String == "7")
        let second = try parsed(lines[1])
        #expect(second["error"] as? String == "f.toml:2: key 'k': bad")
        #expect(second["offset"] == nil)
    }

    @Test("[log] format is validated with the key and line; json and text are accepted")
    func configKey() throws {
        #expect(try ConfigLoader.parse("[log]\nformat = \"json\"\n", file: "c.toml", environment: [:]).log.format == "json")
        #expect(try ConfigLoader.parse("[log]\nlevel = \"info\"\n", file: "c.toml", environment: [:]).log.format == "text")
        do {
            _ = try ConfigLoader.parse("[log]\nlevel = \"info\"\nformat = \"xml\"\n", file: "c.toml", environment: [:])
            Issue.record("format = \"xml\" was accepted")
        } catch let error as ConfigError {
            #expect(error.description == "c.toml:3: key 'log.format': 'xml' is not one of text, json", "\(error)")
        }
    }

    @Test("the daemon with [log] format = \"json\", and with --log-format json: every line parses, librdkafka's and the scripts' included",
          .timeLimit(.minutes(3)))
    func daemonLines() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: daemonBinary.path), "build the executable first (make test does)")
        let scripts = try makeScripts([
            // Logged while generate.lua loads: quotes, a newline, a control character.
            "generate.lua": "scheduler.log('notice', 'said \"hi\"\\nthen \\1 left')\n" + idleGenerate,
            "process.lua": "function process(msg) end",
        ])
        func config(_ name: String, format: String) throws -> URL {
            let file = URL(fileURLWithPath: scripts).deletingLastPathComponent().appendingPathComponent("\(name).toml")
            // session.timeout.ms is a consumer property: the producer answers with a CONFWARN line.
            try """
                groups = []
                [kafka]
                brokers = ["\(TestBroker.shared.bootstrapServers)"]
                [kafka.properties]
                "session.timeout.ms" = 6000
                [api]
                listen = "127.0.0.1:0"
                [schedules]
                enabled = false
                [log]
                format = "\(format)"
                """.write(to: file, atomically: true, encoding: .utf8)
            return file
        }
        try TestBroker.shared.createTopic(ClusterSection().reportsTopic, partitions: 1)
        let daemons = [
            try DaemonProcess(["--config", config("json-key", format: "json").path, "--scripts", scripts]),
            try DaemonProcess(["--config", config("json-flag", format: "text").path, "--scripts", scripts, "--log-format", "json"]),
        ]
        for daemon in daemons {
            let listening = await eventually(timeout: .seconds(60)) { daemon.log.contains("task API listening") }
            #expect(await daemon.terminate() == 0)
            try #require(listening, "no listening line:\n\(daemon.log.suffix(3000))")
            let objects = try daemon.lines.map { try parsed($0) }
            for object in objects {
                #expect(object["timestamp"] is String && object["level"] is String && object["logger"] is String && object["message"] is String,
                        "\(object)")
            }
            let warning = objects.first { ($0["message"] as? String)?.contains("CONFWARN") == true }
            #expect(warning?["logger"] as? String == "task-scheduler.rdkafka", "no librdkafka CONFWARN line in:\n\(daemon.log.prefix(4000))")
            #expect(warning?["level"] as? String == "warning")
            #expect((warning?["kafka.client"] as? String)?.contains("producer") == true)
            let listenLine = objects.first { $0["message"] as? String == "task API listening" }
            #expect((listenLine?["listen"] as? String)?.hasPrefix("127.0.0.1:") == true)
            let scripted = objects.first { ($0["message"] as? String)?.hasPrefix("said") == true }
            #expect(scripted?["message"] as? String == "said \"hi\"\nthen \u{01} left")
            #expect((scripted?["script"] as? String)?.hasSuffix("generate.lua") == true)
        }
    }
}
