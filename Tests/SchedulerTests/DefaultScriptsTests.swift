import Foundation
import Testing
@testable import Scheduler

@Suite("The shipped process.lua", .sharesMachine)
struct DefaultScriptsTests {
    @Test("the default process.lua logs each message, then each of its headers, the way the seed did")
    func processLogsHeaders() async throws {
        let topic = try TestBroker.freshTopic("seedlog", partitions: 1)
        let process = try String(contentsOfFile: repositoryScripts + "/process.lua", encoding: .utf8)
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": process])
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 10_000)
        _ = try await producer.send(OutgoingMessage(topic: topic, key: Array("Key 4".utf8), value: Array("Message EE".utf8),
                                                    headers: [KafkaHeader("header_key", "header_value"), KafkaHeader("a", "b")]))
        await producer.close(timeoutMs: 5000)
        let capture = LogCapture()
        let app = try await buildApplication(LaunchOptions(config: poolConfig(topics: [topic], workers: 1, sliceMs: 500),
                                                           scriptsDirectory: scripts, logger: capture.logger))
        try await app.test(.live) { _ in
            let logged = try await eventually { capture.lines(startingWith: "  Header \"header_key\"").count == 1 }
            #expect(logged, "no header line was logged")
        }
        let lines = capture.all.map(\.message).filter { $0.hasPrefix("key: 'Key 4'") || $0.hasPrefix("  Header ") }
        #expect(lines.count == 3)
        #expect(lines.first?.hasPrefix("key: 'Key 4', payload: 'Message EE', topic: \(topic), partition: 0, offset: 0") == true)
        #expect(Array(lines.dropFirst()) == [#"  Header "a": "b""#, #"  Header "header_key": "header_value""#])
    }
}
