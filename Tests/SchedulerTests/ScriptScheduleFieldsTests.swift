import Foundation
import Testing
@testable import Scheduler

/// `scheduler.schedule{...}` and `POST /tasks/generate` go through one
/// parser: the same fields are refused with the same message.
@Suite("scheduler.schedule and the API parse a schedule alike", .sharesMachine)
struct ScriptScheduleFieldsTests {
    /// The same request as a JSON body and as a Lua table.
    static let cases: [(json: String, lua: String)] = [
        (#"{"topic": "A", "after": "1s"}"#, #"{topic = "A", after = "1s"}"#),
        (#"{"message": "m", "after": "1s"}"#, #"{message = "m", after = "1s"}"#),
        (#"{"topic": "a b", "message": "m", "after": "1s"}"#, #"{topic = "a b", message = "m", after = "1s"}"#),
        (#"{"topic": "A", "message": "m", "every": "fast"}"#, #"{topic = "A", message = "m", every = "fast"}"#),
        (#"{"topic": "A", "message": "m", "every": "10ms"}"#, #"{topic = "A", message = "m", every = "10ms"}"#),
        (#"{"topic": "A", "message": "m", "at": "2099-01-01T00:00:00Z", "after": "1s"}"#,
         #"{topic = "A", message = "m", at = "2099-01-01T00:00:00Z", after = "1s"}"#),
        (#"{"topic": "A", "message": "m", "every": "1s", "timezone": "UTC"}"#, #"{topic = "A", message = "m", every = "1s", timezone = "UTC"}"#),
        (#"{"topic": "A", "message": "m", "cron": "61 * * * *"}"#, #"{topic = "A", message = "m", cron = "61 * * * *"}"#),
        (#"{"topic": "A", "message": "m", "cron": 5}"#, #"{topic = "A", message = "m", cron = 5}"#),
        (#"{"topic": "A", "message": "m", "key": {}, "after": "1s"}"#, #"{topic = "A", message = "m", key = {}, after = "1s"}"#),
        (#"{"topic": "A", "message": "m", "headers": [], "after": "1s"}"#, #"{topic = "A", message = "m", headers = "h", after = "1s"}"#),
    ]

    @Test("a bad field gets the API's message, behind 'scheduler.schedule: '", arguments: 0..<cases.count)
    func sameMessage(_ index: Int) throws {
        let entry = Self.cases[index]
        let apiMessage: String
        do {
            _ = try TaskRequest.parse(Data(entry.json.utf8))
            Issue.record("the API accepted \(entry.json)")
            return
        } catch {
            apiMessage = error.message
        }
        let scriptError = try Self.scriptError(entry.lua)
        #expect(scriptError?.hasSuffix("scheduler.schedule: \(apiMessage)") == true, "script: \(scriptError ?? "accepted"); API: \(apiMessage)")
    }

    @Test("what the API takes as a schedule, a script takes too (numbers of seconds besides)")
    func sameAccepted() throws {
        for lua in [#"{topic = "A", message = "m", after = "90s", key = "k", headers = {h = "v"}}"#,
                    #"{topic = "A", message = "m", cron = "0 9 * * 1", timezone = "Europe/Paris"}"#,
                    #"{topic = "A", message = "m", every = 2.5}"#] {
            #expect(try Self.scriptError(lua) == nil, "\(lua)")
        }
    }

    /// The error `scheduler.schedule(lua)` raises, nil when it returns an id.
    static func scriptError(_ lua: String) throws -> String? {
        let source = """
            function run()
              local ok, result = pcall(scheduler.schedule, \(lua))
              if ok then return type(result) == "string" and #result > 0 and "" or "no id" end
              return tostring(result)
            end
            """
        let bindings = ScriptBindings(script: "t.lua", worker: "t", group: nil, logger: quietLogger,
                                      features: [SchedulePlacement.scriptFeature(SchedulePlacement(topic: "s", partitions: 4, publish: nil))])
        let state = try LuaState.load(source: ScriptSource(name: "t.lua", path: "t.lua", bytes: Array(source.utf8)),
                                      bindings: bindings, limits: LuaLimits(ScriptsSection()))
        let text = try state.call("run", [], results: 1).first?.stringValue
        return text == "" ? nil : text
    }
}
