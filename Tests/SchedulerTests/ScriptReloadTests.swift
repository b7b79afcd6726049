import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Scheduler

/// process.lua that logs `seen <partition> <offset> <version> <payload>`.
func versionedProcess(_ version: String) -> String {
    """
    function process(msg)
      scheduler.log("notice", "seen " .. msg.partition .. " " .. msg.offset .. " \(version) " .. msg.payload)
    end
    """
}

func write(_ text: String, to name: String, in scripts: String) throws {
    try text.write(to: URL(fileURLWithPath: scripts).appendingPathComponent(name), atomically: true, encoding: .utf8)
}

func json(_ response: TestResponse) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]) ?? [:]
}

@Suite("Hot reload of scripts", .sharesMachine)
struct ScriptReloadTests {
    @Test("reloading under a steady stream loses nothing, doubles nothing, and the new version takes over each partition for good")
    func reloadUnderLoad() async throws {
        let topic = try TestBroker.freshTopic("reload", partitions: 2)
        let total = 3000
        let capture = LogCapture()
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": versionedProcess("v1")])
        let config = poolConfig(topics: [topic], workers: 3, sliceMs: 20)
        let app = try await buildApplication(LaunchOptions(config: config, scriptsDirectory: scripts, logger: capture.logger))
        try await app.test(.live) { client in
            // A steady stream: ten batches, the reload in the middle.
            for batch in 0..<10 {
                try await publishKeyed(topic: topic, count: total / 10, keys: 16, startSequence: batch * total / 10)
                if batch == 4 {
                    await eventually { capture.lines(startingWith: "seen ").count >= total / 3 }
                    try write(versionedProcess("v2"), to: "process.lua", in: scripts)
                    let response = try await client.execute(uri: "/scripts/reload", method: .post)
                    #expect(response.status == .ok)
                    #expect(json(response)["result"] as? String == "ok")
                    #expect(json(response)["changed"] as? [String] == ["process.lua"])
                }
            }
            try await awaitCommittedToEnd(client, messages: total)
        }
        let seen = capture.lines(startingWith: "seen ").compactMap(Seen.init)
        #expect(seen.count == total)
        #expect(Set(seen.map { "\($0.partition):\($0.offset)" }).count == seen.count, "a message was processed twice")
        for partition in Int32(0)..<2 {
            let versions = seen.filter { $0.partition == partition }.sorted { $0.offset < $1.offset }.map(\.key)
            guard let firstNew = versions.firstIndex(of: "v2") else {
                Issue.record("partition \(partition) never ran v2")
                continue
            }
            #expect(!versions[firstNew...].contains("v1"), "partition \(partition) went back to v1 after v2")
            #expect(versions.first == "v1")
        }
    }

    @Test("a reload with a syntax error or a failing init() changes nothing and reports file and line", arguments: [
        ("function process(msg)\n  if then\nend\n", 2, "near 'then'"),
        ("function init()\n  error('not today')\nend\nfunction process(msg) end\n", 2, "not today"),
        ("function handle(msg) end\n", nil as Int?, "must define a global function process"),
    ])
    func refusedReload(source: String, line: Int?, message: String) async throws {
        let topic = try TestBroker.freshTopic("badreload", partitions: 1)
        let capture = LogCapture()
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": versionedProcess("v1")])
        let app = try await buildApplication(LaunchOptions(config: poolConfig(topics: [topic], workers: 2, sliceMs: 20), scriptsDirectory: scripts, logger: capture.logger))
        try await app.test(.live) { client in
            let before = json(try await client.execute(uri: "/scripts", method: .get))
            try write(source, to: "process.lua", in: scripts)
            let response = try await client.execute(uri: "/scripts/reload", method: .post)
            #expect(response.status == .unprocessableContent)
            let error = json(response)["error"] as? [String: Any]
            #expect((error?["script"] as? String)?.hasSuffix("process.lua") == true)
            #expect(error?["line"] as? Int == line)
            #expect((error?["message"] as? String)?.contains(message) == true, "got \(String(describing: error))")
            // The old version is still the one in force, and still runs.
            let after = json(try await client.execute(uri: "/scripts", method: .get))
            #expect(after["generation"] as? Int == before["generation"] as? Int)
            #expect((after["last_reload"] as? [String: Any])?["result"] as? String == "failed")
            try await publishKeyed(topic: topic, count: 20, keys: 2)
            await eventually { capture.lines(startingWith: "seen ").count >= 20 }
        }
        let seen = capture.lines(startingWith: "seen ").compactMap(Seen.init)
        #expect(seen.count == 20 && seen.allSatisfy { $0.key == "v1" })
    }

    @Test("init() runs when a state is created and shutdown() before it is dropped")
    func hooks() async throws {
        let capture = LogCapture()
        let scripts = try makeScripts(["generate.lua": """
            function init() scheduler.log("notice", "hook init") end
            function shutdown() scheduler.log("notice", "hook shutdown") end
            function generate() end
            """])
        let script = try await GenerateScript.load(scriptsDirectory: scripts, logger: capture.logger)
        await script.close()
        // Validation state (init, shutdown), then the live state (init, shutdown).
        #expect(capture.lines(startingWith: "hook ").map(\.message) == ["hook init", "hook shutdown", "hook init", "hook shutdown"])
    }
}
