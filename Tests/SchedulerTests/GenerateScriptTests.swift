import Foundation
import Testing
@testable import Scheduler

@Suite("generate.lua: tasks, generate(tick, pool) and on_task(task)", .sharesMachine)
struct GenerateScriptTests {
    @Test("the default script is the seed's producer: pool A to D, every pool task published as 'Message <m>', 'Key <index>', header_key")
    func defaultScript() async throws {
        let script = try await GenerateScript.load(scriptsDirectory: repositoryScripts, logger: quietLogger)
        #expect(script.initialTasks == ["A", "B", "C", "D"].map { TaskSpec(topic: $0, message: $0 + $0) })
        let pool = script.initialTasks + [TaskSpec(topic: "E", message: "EE"), TaskSpec(topic: "F", message: "FF", key: "mine", headers: ["h": "v"])]
        let tasks = try await script.generate(tick: 1, pool: pool)
        #expect(tasks.map(\.topic) == ["A", "B", "C", "D", "E", "F"])
        #expect(tasks.map(\.message) == ["Message AA", "Message BB", "Message CC", "Message DD", "Message EE", "Message FF"])
        #expect(tasks.map(\.key) == ["Key 0", "Key 1", "Key 2", "Key 3", "Key 4", "mine"])
        #expect(tasks.dropLast().allSatisfy { $0.headers == ["header_key": "header_value"] })
        #expect(tasks.last?.headers == ["h": "v"])
        #expect(try await script.generate(tick: 2, pool: []) == [])
        // No on_task: posted tasks are accepted as they are.
        #expect(try await script.onTask(TaskSpec(topic: "E", message: "EE")) == .accept(TaskSpec(topic: "E", message: "EE")))
        await script.close()
    }

    @Test("generate(tick, pool) gets the pool in order as a copy: changing it changes nothing")
    func poolArgument() async throws {
        let dir = try makeScripts(["generate.lua": """
            function generate(tick, pool)
              local out = {}
              for i, task in ipairs(pool) do out[i] = { topic = task.topic, message = i .. ":" .. task.message .. ":" .. #pool } end
              pool[1].message = "changed"
              table.remove(pool)
              return out
            end
            """])
        let script = try await GenerateScript.load(scriptsDirectory: dir, logger: quietLogger)
        #expect(script.initialTasks == [])
        let pool = [TaskSpec(topic: "A", message: "a"), TaskSpec(topic: "B", message: "b", key: "k")]
        let expected = [TaskSpec(topic: "A", message: "1:a:2"), TaskSpec(topic: "B", message: "2:b:2")]
        #expect(try await script.generate(tick: 1, pool: pool) == expected)
        #expect(try await script.generate(tick: 2, pool: pool) == expected)
        await script.close()
    }

    @Test("a malformed tasks global stops the load with the entry that is wrong", arguments: [
        ("tasks = 5", "global 'tasks' must be a list of tasks, got number"),
        ("tasks = { { topic = 'A', message = 'x' }, { topic = 'B' } }", "tasks[2]: task field 'message' must be a string"),
    ])
    func badTasks(source: String, expected: String) async throws {
        let dir = try makeScripts(["generate.lua": source + "\nfunction generate() end\n"])
        await #expect {
            _ = try await GenerateScript.load(scriptsDirectory: dir, logger: quietLogger)
        } throws: { error in
            "\(error)".contains(expected) && "\(error)".contains("generate.lua")
        }
    }

    @Test("generate receives the tick; scheduler.emit adds tasks")
    func tickAndEmit() async throws {
        let dir = try makeScripts(["generate.lua": """
            function generate(tick)
              scheduler.emit("emitted", "from emit", "k", { h = "v" })
              return { { topic = "T", message = "tick " .. tick } }
            end
            """])
        let script = try await GenerateScript.load(scriptsDirectory: dir, logger: quietLogger)
        let tasks = try await script.generate(tick: 7)
        #expect(tasks == [
            TaskSpec(topic: "T", message: "tick 7"),
            TaskSpec(topic: "emitted", message: "from emit", key: "k", headers: ["h": "v"]),
        ])
        await script.close()
    }

    @Test("on_task can change a task or refuse it with a reason")
    func onTask() async throws {
        let dir = try makeScripts(["generate.lua": """
            function generate() return nil end
            function on_task(task)
              if task.topic == "forbidden" then return nil, "topic forbidden is closed" end
              task.message = string.upper(task.message)
              return task
            end
            """])
        let script = try await GenerateScript.load(scriptsDirectory: dir, logger: quietLogger)
        #expect(try await script.onTask(TaskSpec(topic: "ok", message: "hi")) == .accept(TaskSpec(topic: "ok", message: "HI")))
        #expect(try await script.onTask(TaskSpec(topic: "forbidden", message: "x")) == .refuse("topic forbidden is closed"))
        #expect(try await script.generate(tick: 1) == [])
        await script.close()
    }

    @Test("a runtime error is reported with the script's file and line, and the script keeps working")
    func runtimeError() async throws {
        let dir = try makeScripts(["generate.lua": """
            local calls = 0
            function generate(tick)
              calls = calls + 1
              if tick == 1 then
                error("boom")
              end
              return { { topic = "T", message = tostring(calls) } }
            end
            """])
        let script = try await GenerateScript.load(scriptsDirectory: dir, logger: quietLogger)
        await #expect {
            _ = try await script.generate(tick: 1)
        } throws: { error in
            let lua = error as? LuaError
            return lua?.line == 5 && lua?.message == "boom" && lua?.script.hasSuffix("scripts/generate.lua") == true
                && lua?.traceback != nil
        }
        #expect(try await script.generate(tick: 2) == [TaskSpec(topic: "T", message: "2")])
        await script.close()
    }

    @Test("a syntax error is reported with its line at load")
    func syntaxError() async throws {
        let dir = try makeScripts(["generate.lua": "function generate(tick)\n  return {\nend\n"])
        await #expect {
            _ = try await GenerateScript.load(scriptsDirectory: dir, logger: quietLogger)
        } throws: { error in
            (error as? LuaError)?.line == 3
        }
    }

    @Test("answers of the wrong shape are errors naming what is wrong", arguments: [
        ("return 'tasks'", "must return a list of tasks or nil, got string"),
        ("return { { topic = 1, message = 'x' } }", "result [1]: task field 'topic' must be a string, got number"),
        ("return { { topic = 'T' } }", "result [1]: task field 'message' must be a string, got nil"),
        ("return { { topic = 'T', message = 'x', headers = 'h' } }", "result [1]: task field 'headers' must be a table, got string"),
        ("scheduler.emit('bad topic!', 'x')", "scheduler.emit: topic name 'bad topic!' may only contain"),
    ])
    func wrongShapes(body: String, expected: String) async throws {
        let dir = try makeScripts(["generate.lua": "function generate(tick)\n  \(body)\nend\n"])
        let script = try await GenerateScript.load(scriptsDirectory: dir, logger: quietLogger)
        await #expect {
            _ = try await script.generate(tick: 1)
        } throws: { error in
            "\(error)".contains(expected)
        }
        await script.close()
    }

    @Test("scripts cannot reach os.exit, io or files")
    func sandbox() async throws {
        let dir = try makeScripts(["generate.lua": """
            function generate(tick)
              return { { topic = "T", message = table.concat({ type(os.exit), type(io), type(dofile), type(loadfile), type(os.time) }, ",") } }
            end
            """])
        let script = try await GenerateScript.load(scriptsDirectory: dir, logger: quietLogger)
        #expect(try await script.generate(tick: 1) == [TaskSpec(topic: "T", message: "nil,nil,nil,nil,function")])
        await script.close()
    }

    @Test("a script without generate() is refused at load")
    func missingGenerate() async throws {
        let dir = try makeScripts(["generate.lua": "x = 1"])
        await #expect {
            _ = try await GenerateScript.load(scriptsDirectory: dir, logger: quietLogger)
        } throws: { error in
            "\(error)".contains("must define a global function generate")
        }
    }
}
