import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Scheduler

@Suite("Scheduled tasks over HTTP: at, after, every, cron; GET and DELETE", .sharesMachine)
struct ScheduleAPITests {
    @Test("at, after and every fire on time (never early), once for the one-shots, on cadence for every; GET lists; DELETE cancels")
    func fireOnTime() async throws {
        let topic = try TestBroker.freshTopic("sched")
        try await withApplication(schedulingConfig()) { client throws in
            #expect(try await eventually { try await schedulesLive(client) })
            let start = RFC3339.nowMs
            let at = try await postSchedule(client, #"{"topic": "\#(topic)", "message": "at", "at": "\#(RFC3339.format(start + 1500))"}"#)
            // A schedule cannot fire before it is stored: lateness counts from the later of due and stored.
            let atStored = RFC3339.nowMs
            let after = try await postSchedule(client, #"{"topic": "\#(topic)", "message": "after", "after": "1s"}"#)
            let every = try await postSchedule(client, #"{"topic": "\#(topic)", "message": "every", "every": "500ms", "key": "k"}"#)
            let cron = try await postSchedule(client, #"{"topic": "\#(topic)", "message": "cron", "cron": "0 0 1 1 *", "timezone": "Europe/Berlin"}"#)
            #expect(at["kind"] as? String == "at" && after["kind"] as? String == "after" && every["kind"] as? String == "every")
            #expect(at["next_due"] as? String == RFC3339.format(start + 1500))
            let everyID = try #require(every["id"] as? String)
            let cronID = try #require(cron["id"] as? String)
            let cronDue = try #require(cron["next_due"] as? String)
            #expect(cronDue.hasSuffix(":00:00.000Z") && (cronDue.contains("-12-31T23:") || cronDue.contains("-01-01T00:")))

            var fired: [FiredTask] = []
            #expect(try await eventually {
                fired = try await firedTasks(topic: topic, for: .seconds(2))
                return fired.filter { $0.message == "every" }.count >= 5 && fired.contains { $0.message == "at" }
            })
            // GET /tasks: the pool, then the schedules still there (the one-shots fired and are gone).
            let listed = try await poolList(client).compactMap { $0["id"] as? String }.filter { $0.hasPrefix("s-") }
            #expect(Set(listed) == [everyID, cronID])
            #expect(try await delete(client, "/tasks/\(everyID)").status == .ok)
            let cancelledAt = RFC3339.nowMs
            // This daemon owns every partition: the cancelled schedule is gone at once.
            #expect(try await delete(client, "/tasks/\(everyID)").status == .notFound)
            #expect(try await poolList(client).compactMap { $0["id"] as? String }.filter { $0.hasPrefix("s-") } == [cronID])

            fired = try await firedTasks(topic: topic, for: .seconds(3))
            #expect(fired.filter { $0.message == "at" }.count == 1)
            #expect(fired.filter { $0.message == "after" }.count == 1)
            #expect(fired.filter { $0.message == "cron" }.isEmpty)
            let everyDues = fired.filter { $0.message == "every" }.map(\.dueMs).sorted()
            #expect(Set(everyDues).count == everyDues.count, "an every fire was doubled")
            // On the 500 ms grid; a slot is skipped only after a fire more than a
            // period late (it stood for the missed period: catch-up under load).
            let everyFires = fired.filter { $0.message == "every" }.sorted { $0.dueMs < $1.dueMs }
            #expect(everyDues.allSatisfy { ($0 - everyDues[0]) % 500 == 0 }, "every: dues \(everyDues)")
            for (earlier, later) in zip(everyFires, everyFires.dropFirst()) where later.dueMs - earlier.dueMs > 500 {
                #expect(earlier.timestampMs - earlier.dueMs > 500, "every: a due after \(earlier.dueMs) was skipped")
            }
            // Cancelled: nothing due after the cancel (one fire may have been in flight).
            #expect(everyDues.filter { $0 > cancelledAt + 500 }.isEmpty)
            for task in fired {
                #expect(task.timestampMs >= task.dueMs, "\(task.message) fired \(task.dueMs - task.timestampMs) ms early")
                // The bound on lateness is loose (the full suite loads the
                // machine); the benchmark measures precision.
                let late = task.timestampMs - max(task.dueMs, task.message == "at" ? atStored : task.dueMs)
                #expect(late < 2000, "\(task.message) fired \(late) ms after it was due and stored (due \(task.dueMs - start), stored \(atStored - start))")
            }
            #expect(fired.first { $0.message == "at" }?.dueMs == start + 1500)
            // Metrics: fires, the fire-delay histogram, creations by kind.
            let metrics = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            let fires = metrics.split(separator: "\n").first { $0.hasPrefix("scheduler_schedule_fires_total") }
            #expect(fires.flatMap { Int($0.split(separator: " ").last ?? "") }.map { $0 >= fired.count } == true, "\(String(describing: fires))")
            #expect(metrics.contains("scheduler_schedule_fire_delay_seconds_bucket"))
            #expect(metrics.contains(#"scheduler_schedules_created_total{kind="every"} 1"#))
        }
    }

    @Test("a past-due at posted to the live owner of every partition fires once (its creation read back after the fire is not a new schedule)")
    func pastDueFiresOnce() async throws {
        let topic = try TestBroker.freshTopic("pastdue")
        try await withApplication(schedulingConfig()) { client throws in
            #expect(try await eventually { try await schedulesLive(client) })
            var ids: [String] = []
            for index in 0..<10 {
                let posted = try await postSchedule(client, #"{"topic": "\#(topic)", "message": "m\#(index)", "at": "2020-01-01T00:00:00Z"}"#)
                ids.append(posted["id"] as? String ?? "")
            }
            var fired: [FiredTask] = []
            #expect(try await eventually {
                fired = try await firedTasks(topic: topic, for: .seconds(1))
                return Set(fired.map(\.id)).isSuperset(of: ids)
            })
            // Read again after every record written so far was read back by the owner.
            try await Task.sleep(for: .seconds(1))
            fired = try await firedTasks(topic: topic, for: .seconds(2))
            let doubled = ids.filter { id in fired.filter { $0.id == id }.count != 1 }
            #expect(doubled.isEmpty, "fired other than once: \(doubled.count) of \(ids.count)")
        }
    }

    @Test("bad schedule fields get 400 naming the field", arguments: [
        (#""after": "soon""#, "field 'after'"),
        (#""every": "10ms""#, "field 'every'"),
        (#""at": "tomorrow""#, "field 'at'"),
        (#""cron": "* * *""#, "field 'cron'"),
        (#""cron": "61 * * * *""#, "field 'cron': minute"),
        (#""cron": "* * * * *", "timezone": "Mars/Olympus""#, "field 'timezone'"),
        (#""every": "1s", "timezone": "UTC""#, "field 'timezone'"),
        (#""at": "2026-11-30T09:00:00Z", "every": "1s""#, "only one of"),
        (#""every": "1s", "once": true"#, "field 'once'"),
        (#""every": 5"#, "field 'every' must be a string"),
    ])
    func badFields(_ fields: String, _ expected: String) async throws {
        try await withApplication(testConfig()) { client throws in
            let response = try await post(client, #"{"topic": "A", "message": "m", \#(fields)}"#)
            #expect(response.status == .badRequest)
            #expect(errorText(response)?.contains(expected) == true, "got \(errorText(response) ?? "nil")")
        }
    }

    @Test("restart: a one-shot that fell due while down fires once at start; a recurring one fires once for the missed period, then on its cadence")
    func restartCatchUp() async throws {
        let topic = try TestBroker.freshTopic("catchup")
        let config = schedulingConfig()
        let ids = try await withApplication(config) { client throws in
            #expect(try await eventually { try await schedulesLive(client) })
            let once = try await postSchedule(client, #"{"topic": "\#(topic)", "message": "once", "after": "2s"}"#)
            let every = try await postSchedule(client, #"{"topic": "\#(topic)", "message": "every", "every": "1s"}"#)
            #expect(try await eventually { try await firedTasks(topic: topic, for: .seconds(2)).contains { $0.message == "every" } })
            return (once["id"] as? String ?? "", every["id"] as? String ?? "")
        }
        let stopped = RFC3339.nowMs
        // Down for longer than the one-shot's delay and several periods of the recurring one.
        try await Task.sleep(for: .seconds(4))
        let relaunched = RFC3339.nowMs
        try await withApplication(config) { client throws in
            #expect(try await eventually { try await schedulesLive(client) })
            var fired: [FiredTask] = []
            #expect(try await eventually {
                fired = try await firedTasks(topic: topic, for: .seconds(2))
                return fired.contains { $0.message == "once" } && fired.filter { $0.message == "every" && $0.timestampMs > relaunched }.count >= 3
            })
            #expect(fired.filter { $0.id == ids.0 }.count == 1, "the one-shot fired \(fired.filter { $0.id == ids.0 }.count) times")
            let every = fired.filter { $0.id == ids.1 }.sorted { $0.dueMs < $1.dueMs }
            #expect(Set(every.map(\.dueMs)).count == every.count, "a fire was doubled")
            // The first fire after the restart is the catch-up: late, for a due missed while down.
            let afterRestart = every.filter { $0.timestampMs >= relaunched }
            let catchUp = try #require(afterRestart.first)
            #expect(catchUp.dueMs < relaunched && catchUp.timestampMs - catchUp.dueMs > 1000, "first fire after the restart: due \(catchUp.dueMs - stopped), at \(catchUp.timestampMs - stopped)")
            // Once for the whole missed period: one fire for all the dues that passed while down.
            let lastBefore = every.filter { $0.timestampMs < relaunched }.map(\.dueMs).max() ?? stopped
            let missed = every.filter { $0.dueMs > lastBefore && $0.dueMs <= catchUp.timestampMs - 1000 }
            #expect(missed.count == 1, "the missed period fired \(missed.count) times")
            // Then the cadence: one second apart, on the original grid.
            let later = afterRestart.dropFirst().map(\.dueMs)
            #expect(zip(later, later.dropFirst()).allSatisfy { $1 - $0 == 1000 }, "dues after catch-up: \(later)")
            #expect(later.allSatisfy { ($0 - every[0].dueMs) % 1000 == 0 })
        }
    }

    @Test("scripts: scheduler.schedule from on_task returns the id the fired task carries; bad fields raise naming the field; scheduler.cancel")
    func luaSchedule() async throws {
        let topic = try TestBroker.freshTopic("lua-sched")
        let scripts = try makeScripts([
            "generate.lua": """
                function generate() return nil end
                function on_task(task)
                  if task.message == "bad" then
                    local ok, err = pcall(scheduler.schedule, {topic = task.topic, message = "x", every = "fast"})
                    scheduler.log("notice", "bad: " .. tostring(err))
                    ok, err = pcall(scheduler.schedule, {topic = task.topic, message = "x", evry = "1s"})
                    scheduler.log("notice", "bad: " .. tostring(err))
                    ok, err = pcall(scheduler.schedule, {topic = task.topic, message = "\\xff\\xfe", after = "1s"})
                    scheduler.log("notice", "bad: " .. tostring(err))
                    ok, err = pcall(scheduler.schedule, {topic = task.topic, message = "x", headers = {raw = "\\xc3"}, after = "1s"})
                    scheduler.log("notice", "bad: " .. tostring(err))
                    return nil, "refused"
                  end
                  local id = scheduler.schedule{topic = task.topic, message = "later " .. task.message, after = 0.5,
                                                headers = {origin = "lua"}}
                  local gone = scheduler.schedule{topic = task.topic, message = "never", after = "3s"}
                  scheduler.cancel(gone)
                  -- Due after the cancelled one: once it fired, so would have "never".
                  scheduler.schedule{topic = task.topic, message = "witness", after = "3500ms"}
                  scheduler.log("notice", "scheduled " .. id)
                  return task
                end
                """,
        ])
        let capture = LogCapture()
        let app = try await buildApplication(LaunchOptions(config: schedulingConfig(), scriptsDirectory: scripts, logger: capture.logger))
        try await app.test(.live) { client in
            #expect(try await eventually { try await schedulesLive(client) })
            let posted = try await post(client, #"{"topic": "\#(topic)", "message": "m", "once": true}"#)
            #expect(posted.status == .ok, "\(errorText(posted))")
            #expect(try await post(client, #"{"topic": "\#(topic)", "message": "bad"}"#).status == .badRequest)
            let logged = try #require(capture.lines(startingWith: "scheduled ").first?.message.dropFirst("scheduled ".count))
            var fired: [FiredTask] = []
            #expect(try await eventually {
                fired = try await firedTasks(topic: topic, for: .seconds(2))
                return fired.contains { $0.message == "later m" }
            })
            #expect(fired.first { $0.message == "later m" }?.id == String(logged))
            let bad = capture.lines(startingWith: "bad: ").map(\.message)
            #expect(bad.count == 4)
            #expect(bad.first?.contains("field 'every'") == true, "\(bad)")
            #expect(bad.dropFirst().first?.contains("unknown field 'evry'") == true, "\(bad)")
            // Bytes that are not UTF-8 are refused, not stored altered.
            #expect(bad.dropFirst(2).first?.contains("field 'message' must be UTF-8 text") == true, "\(bad)")
            #expect(bad.last?.contains("header 'raw' must be UTF-8 text") == true, "\(bad)")
            // The cancelled one never fires: not by the time one due after it did.
            #expect(try await eventually {
                fired = try await firedTasks(topic: topic, for: .seconds(1))
                return fired.contains { $0.message == "witness" }
            })
            #expect(fired.filter { $0.message == "never" }.isEmpty)
        }
    }
}
