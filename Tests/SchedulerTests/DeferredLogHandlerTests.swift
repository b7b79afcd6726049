import Logging
import Scheduler
import Synchronization
import Testing

/// A stream that keeps what is written to it.
private final class Written: Sendable {
    let text = Mutex("")
    var lines: [String] { text.withLock { $0.split(separator: "\n").map(String.init) } }
}

private struct Capture: TextOutputStream, Sendable {
    let into: Written
    func write(_ string: String) { into.text.withLock { $0 += string } }
}

@Suite("Log lines", .sharesMachine)
struct DeferredLogHandlerTests {
    @Test("the deferred handler writes exactly StreamLogHandler's lines: the logger's metadata, a provider's and the call's")
    func sameLines() throws {
        let provider = Logger.MetadataProvider { ["trace": "t-1"] }
        let plain = Written(), deferred = Written()
        var loggers = [
            Logger(label: "task-scheduler") { StreamLogHandler(label: $0, stream: Capture(into: plain), metadataProvider: provider) },
            Logger(label: "task-scheduler") { DeferredLogHandler(StreamLogHandler(label: $0, stream: Capture(into: deferred), metadataProvider: provider)) },
        ]
        for index in loggers.indices {
            loggers[index].logLevel = .info
            loggers[index][metadataKey: "worker"] = "w1"
            loggers[index][metadataKey: "hb.request.id"] = "42"
            loggers[index].info("one")
            loggers[index][metadataKey: "hb.request.id"] = nil
            loggers[index].warning("two", metadata: ["offset": "7"])
            loggers[index].debug("below the level")
        }
        // The timestamp (first word) may differ by a second between the two.
        func withoutTime(_ lines: [String]) -> [String] { lines.map { String($0.drop { $0 != " " }) } }
        try #require(plain.lines.count == 2, "\(plain.lines)")
        #expect(withoutTime(deferred.lines) == withoutTime(plain.lines))
        #expect(deferred.lines[0].contains("hb.request.id=42") && deferred.lines[0].contains("worker=w1"), "\(deferred.lines)")
        #expect(!deferred.lines[1].contains("hb.request.id") && deferred.lines[1].contains("offset=7"), "\(deferred.lines)")
    }
}
