import Foundation
import Testing
@testable import Scheduler

@Suite("task-scheduler check", .sharesMachine)
struct ConfigCheckTests {
    @Test("the shipped config and scripts pass")
    func shippedFilesPass() async throws {
        let config = URL(fileURLWithPath: repositoryScripts).deletingLastPathComponent().appendingPathComponent("config.toml").path
        let result = await ConfigCheck.run(configPath: config, scriptsDirectory: repositoryScripts, logger: quietLogger)
        #expect(result.problems == [])
        #expect(result.summary.contains { $0.hasSuffix("generate.lua: ok") })
    }

    @Test("a script's syntax error and a config error are both reported with file and line")
    func reportsEveryProblem() async throws {
        let scripts = try makeScripts([
            "generate.lua": "function generate() return nil end",
            "process.lua": "function process(msg)\n  if then\nend\n",
        ])
        let configFile = URL(fileURLWithPath: scripts).deletingLastPathComponent().appendingPathComponent("bad.toml")
        try "[producer]\ninterval_ms = \"fast\"\n".write(to: configFile, atomically: true, encoding: .utf8)
        let result = await ConfigCheck.run(configPath: configFile.path, scriptsDirectory: scripts, logger: quietLogger)
        #expect(result.problems.count == 2)
        #expect(result.problems.contains { $0.hasPrefix("\(configFile.path):2: key 'producer.interval_ms'") })
        #expect(result.problems.contains { $0.contains("process.lua:2:") })
    }

    @Test("a malformed tasks global in generate.lua (the pool's initial content) is reported with the entry")
    func malformedTasks() async throws {
        let scripts = try makeScripts([
            "generate.lua": "tasks = { { topic = 'A', message = 'AA' }, { message = 'no topic' } }\nfunction generate() end",
            "process.lua": "function process(msg) end",
        ])
        let result = await ConfigCheck.run(configPath: nil, scriptsDirectory: scripts, logger: quietLogger)
        #expect(result.problems.count == 1)
        #expect(result.problems.contains { $0.contains("generate.lua: tasks[2]: task field 'topic' must be a string") })
    }

    @Test("a wrong entry of generate.lua's schedules table is reported naming the entry and field")
    func malformedSchedules() async throws {
        let scripts = try makeScripts([
            "generate.lua": "schedules = { nightly = { topic = 'r', message = 'n', cron = '61 * * * *' } }\nfunction generate() end",
            "process.lua": "function process(msg) end",
        ])
        let result = await ConfigCheck.run(configPath: nil, scriptsDirectory: scripts, logger: quietLogger)
        #expect(result.problems.count == 1)
        #expect(result.problems.contains { $0.contains(#"global 'schedules': field 'schedules["nightly"].cron': minute '61'"#) }, "\(result.problems)")
    }

    @Test("a process.lua without process() and a policy without rotate() are reported")
    func missingHooks() async throws {
        let scripts = try makeScripts([
            "generate.lua": "function generate() return nil end",
            "process.lua": "function handle(msg) end",
        ])
        let policies = URL(fileURLWithPath: scripts).appendingPathComponent("policies")
        try FileManager.default.createDirectory(at: policies, withIntermediateDirectories: true)
        try "function choose(ctx) end".write(to: policies.appendingPathComponent("mine.lua"), atomically: true, encoding: .utf8)
        let result = await ConfigCheck.run(configPath: nil, scriptsDirectory: scripts, logger: quietLogger)
        #expect(result.problems.contains { $0.contains("process.lua: the script must define a global function process") })
        #expect(result.problems.contains { $0.contains("mine.lua: the script must define a global function rotate") })
    }
}
