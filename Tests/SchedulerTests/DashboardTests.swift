import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Scheduler

let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }

/// Runs headless Chromium on `url` with `arguments` and returns its stdout.
/// It waits for Chromium on a thread of its own: blocking a thread of Swift's
/// concurrency pool (2 on this machine) would starve the daemon that
/// Chromium is loading the page from, and two such tests deadlock.
func runChromium(_ arguments: [String], url: String) async throws -> String {
    let thread = DedicatedThread(name: "chromium")
    defer { thread.stop() }
    return try await thread.run { try runChromiumBlocking(arguments, url: url) }
}

private func runChromiumBlocking(_ arguments: [String], url: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: chromium!)
    process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                         "--window-size=1280,1000", "--virtual-time-budget=6000"] + arguments + [url]
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try launch(process)
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}

@Suite("Dashboard", .sharesMachine)
struct DashboardTests {
    @Test("GET / serves the page")
    func servesPage() async throws {
        try await withApplication(testConfig()) { client in
            let response = try await client.execute(uri: "/", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "text/html; charset=utf-8")
            #expect(String(buffer: response.body).contains("task-scheduler dashboard"))
        }
    }

    @Test("in headless Chromium the task pool is listed, each task with a remove button; the schedules that fire next with a cancel button",
          .enabled(if: chromium != nil, "needs Debian's chromium (make test installs it)"))
    func rendersPool() async throws {
        try await withApplication(schedulingConfig()) { client in
            #expect(try await post(client, #"{"topic": "E", "message": "EE", "key": "k9"}"#).status == .ok)
            let scheduled = try await postSchedule(client, #"{"topic": "E", "message": "later", "cron": "0 9 * * MON", "timezone": "Europe/Berlin"}"#)
            let id = try #require(scheduled["id"] as? String)
            #expect(try await eventually { try await poolList(client).contains { $0["id"] as? String == id } })
            let port = try #require(client.port)
            let dom = try await runChromium(["--dump-dom"], url: "http://127.0.0.1:\(port)/")
            // What fires next: the schedule, with its due time and a cancel button.
            #expect(dom.contains("data-schedule=\"\(id)\""), "schedule missing from the dashboard")
            #expect(dom.contains("cron 0 9 * * MON (Europe/Berlin)"))
            #expect(dom.components(separatedBy: "class=\"cancel\"").count - 1 == 1)
            // Pause and trigger beside it (resume once paused).
            #expect(dom.components(separatedBy: "class=\"pause\"").count - 1 == 1 && dom.components(separatedBy: "class=\"trigger\"").count - 1 == 1)
            for index in 0..<5 { #expect(dom.contains("data-index=\"\(index)\""), "pool task \(index) missing") }
            #expect(dom.components(separatedBy: "class=\"remove\"").count - 1 == 5, "one remove button per task")
            #expect(dom.contains("<td>EE</td><td>k9</td>"))
        }
    }

    @Test("in headless Chromium the dead-letter topics are listed with their count and newest error, each with a redrive button",
          .enabled(if: chromium != nil, "needs Debian's chromium (make test installs it)"), .timeLimit(.minutes(3)))
    func rendersDeadLetters() async throws {
        let topic = try TestBroker.freshTopic("dash-dlq", partitions: 1)
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": #"function process(msg) error("no " .. msg.payload) end"#])
        var config = poolConfig(topics: [topic], workers: 1, sliceMs: 10)
        config.groups[0].maxAttempts = 1
        config.groups[0].retryBackoffMs = 0
        let app = try await buildApplication(LaunchOptions(config: config, scriptsDirectory: scripts, logger: quietLogger))
        try await app.test(.live) { client in
            #expect(try await post(client, #"{"topic": "\#(topic)", "message": "thing", "key": "k"}"#).status == .ok)
            #expect(try await eventually(timeout: .seconds(60)) {
                let body = String(buffer: try await client.execute(uri: "/dlq", method: .get).body)
                return body.contains(#""messages":1"#)
            })
            let port = try #require(client.port)
            let dom = try await runChromium(["--dump-dom", "--virtual-time-budget=3000"], url: "http://127.0.0.1:\(port)/")
            #expect(dom.contains("data-dlq=\"\(topic).dlq\""), "dead-letter topic missing from the dashboard")
            #expect(dom.contains("<td>\(topic).dlq</td><td>\(topic)</td><td>1</td>"))
            #expect(dom.contains("no thing"), "newest error missing")
            #expect(dom.components(separatedBy: "class=\"redrive\"").count - 1 == 1, "one redrive button")
        }
    }

    @Test("in headless Chromium the group, its workers and a lease appear; a screenshot is saved",
          .enabled(if: chromium != nil, "needs Debian's chromium (make test installs it)"))
    func rendersInChromium() async throws {
        let topic = try TestBroker.freshTopic("dash", partitions: 2)
        let group = "dash-\(UUID().uuidString.prefix(6))"
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": """
            function process(msg)
              local started = os.clock()
              while os.clock() - started < 0.002 do end
            end
            """])
        try await publishKeyed(topic: topic, count: 4000, keys: 16)
        let app = try await buildApplication(LaunchOptions(config: poolConfig(topics: [topic], workers: 3, sliceMs: 200, group: group),
                                                           scriptsDirectory: scripts, logger: quietLogger))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let url = "http://127.0.0.1:\(port)/"
            try await eventually {
                let view = try JSONSerialization.jsonObject(with: Data(buffer: try await client.execute(uri: "/groups", method: .get).body)) as? [[String: Any]]
                return ((view?.first?["recent_leases"] as? [Any])?.count ?? 0) > 2
            }
            let dom = try await runChromium(["--dump-dom"], url: url)
            #expect(dom.contains("data-group=\"\(group)\""), "group missing from the rendered page")
            for index in 0..<3 { #expect(dom.contains("data-worker=\"\(group)-\(index)\""), "worker \(index) missing") }
            #expect(dom.contains("class=\"lease\""), "no lease drawn")
            #expect(dom.contains("\(topic)[0]"))
            let screenshot = FileManager.default.temporaryDirectory.appendingPathComponent("task-scheduler-dashboard.png")
            _ = try await runChromium(["--screenshot=\(screenshot.path)"], url: url)
            #expect(FileManager.default.fileExists(atPath: screenshot.path))
            print("dashboard screenshot: \(screenshot.path)")
        }
    }
}

@Suite("Dashboard: the cluster and a quiet default load", .sharesMachine)
struct DashboardClusterTests {
    @Test("in headless Chromium the cluster panel lists this daemon live with what it holds; never-committed partitions read 'none yet'; every partition has its own colour; the rate names its window",
          .enabled(if: chromium != nil, "needs Debian's chromium (make test installs it)"))
    func rendersClusterAndQuietPartitions() async throws {
        let topics = [try TestBroker.freshTopic("dash-a", partitions: 4), try TestBroker.freshTopic("dash-b", partitions: 4)]
        let group = "dash-q-\(UUID().uuidString.prefix(6))"
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": "function process(msg) end"])
        let app = try await buildApplication(LaunchOptions(config: poolConfig(topics: topics, workers: 2, sliceMs: 200, group: group),
                                                           scriptsDirectory: scripts, logger: quietLogger))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            // Assigned, and reported: the cluster view lists the eight partitions.
            var selfID = ""
            #expect(try await eventually(timeout: .seconds(60)) {
                let view = try JSONSerialization.jsonObject(with: Data(buffer: try await client.execute(uri: "/cluster", method: .get).body)) as? [String: Any]
                selfID = view?["self_id"] as? String ?? ""
                let me = (view?["daemons"] as? [[String: Any]])?.first { $0["id"] as? String == selfID }
                return heldPartitions(me).count == 8
            })
            let dom = try await runChromium(["--dump-dom"], url: "http://127.0.0.1:\(port)/")
            #expect(dom.contains("data-daemon=\"\(selfID)\" data-status=\"live\""), "this daemon missing from the cluster panel")
            #expect(dom.contains("status-live"))
            // Nothing was ever committed here: said in words, not as -1.
            #expect(dom.components(separatedBy: "none yet").count - 1 >= 8, "never-committed partitions not shown as such")
            #expect(!dom.contains("<td>-1</td>"))
            // Eight partitions, eight colours (the partition table's swatches).
            var colours: [String: String] = [:]
            for topic in topics {
                for partition in 0..<4 {
                    let marker = "data-partition=\"\(topic)[\(partition)]\""
                    let row = try #require(dom.range(of: marker).map { String(dom[$0.upperBound...].prefix(300)) }, "row \(topic)[\(partition)] missing")
                    let colour = try #require(row.range(of: ##"data-color="#[0-9a-f]{6}""##, options: .regularExpression).map { String(row[$0]) })
                    colours["\(topic)[\(partition)]"] = colour
                }
            }
            #expect(Set(colours.values).count == 8, "partition colours repeat: \(colours)")
            #expect(dom.contains("over the last"), "the rate does not say its window")
        }
    }
}
