import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Scheduler

/// `GET /schedules[...]` or `/schedules/<id>`: the JSON answer and its status.
func scheduleCall(_ client: some TestClientProtocol, _ uri: String, _ method: HTTPRequest.Method = .get, body: String? = nil) async throws -> (HTTPResponse.Status, Any?) {
    let response = try await client.execute(uri: uri, method: method, headers: [.contentType: "application/json"],
                                            body: body.map { ByteBuffer(string: $0) })
    return (response.status, try? JSONSerialization.jsonObject(with: Data(buffer: response.body)))
}

@Suite("Schedules by id over HTTP: client-chosen ids, PUT, pause, resume, trigger, DELETE, catch-up policy", .sharesMachine)
struct ScheduleControlAPITests {
    @Test("the same id posted twice is one schedule; PUT changes it in place; pause stops fires, trigger fires once while paused, resume fires again; DELETE removes it")
    func lifecycle() async throws {
        let topic = try TestBroker.freshTopic("sched-ctl")
        try await withApplication(schedulingConfig()) { client throws in
            #expect(try await eventually { try await schedulesLive(client) })
            let body = #"{"id": "nightly-report", "topic": "\#(topic)", "message": "v1", "every": "300ms"}"#
            let first = try await postSchedule(client, body)
            let second = try await postSchedule(client, body)
            #expect(first["id"] as? String == "nightly-report" && second["id"] as? String == "nightly-report")
            // Fires between the two posts move next_due on by whole periods;
            // posting again must not move its cadence (its anchor).
            let firstDue = try RFC3339.parse(first["next_due"] as? String ?? "", field: "next_due")
            let secondDue = try RFC3339.parse(second["next_due"] as? String ?? "", field: "next_due")
            #expect(secondDue >= firstDue && (secondDue - firstDue) % 300 == 0, "posting it again moved its cadence: \(firstDue) then \(secondDue)")
            let (listStatus, list) = try await scheduleCall(client, "/schedules")
            #expect(listStatus == .ok)
            let ids = (list as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            #expect(ids.filter { $0 == "nightly-report" }.count == 1, "\(ids)")
            #expect(try await eventually { try await firedTasks(topic: topic, for: .seconds(1)).filter { $0.message == "v1" }.count >= 2 })

            // PUT: the new message fires from now on, on the same schedule.
            let (putStatus, put) = try await scheduleCall(client, "/schedules/nightly-report", .put,
                                                          body: #"{"topic": "\#(topic)", "message": "v2", "every": "300ms"}"#)
            #expect(putStatus == .ok && (put as? [String: Any])?["message"] as? String == "v2")
            #expect(try await eventually { try await firedTasks(topic: topic, for: .seconds(1)).contains { $0.message == "v2" } })

            // Pause: nothing due after the answer fires (one fire may have been in flight).
            let (pauseStatus, paused) = try await scheduleCall(client, "/schedules/nightly-report/pause", .post)
            let pausedAt = RFC3339.nowMs
            #expect(pauseStatus == .ok && (paused as? [String: Any])?["state"] as? String == "paused")
            let (_, pausedList) = try await scheduleCall(client, "/schedules?state=paused")
            #expect((pausedList as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["nightly-report"])
            // Trigger while paused: exactly one extra fire.
            let (triggerStatus, _) = try await scheduleCall(client, "/schedules/nightly-report/trigger", .post)
            #expect(triggerStatus == .ok)
            var fired: [FiredTask] = []
            #expect(try await eventually {
                fired = try await firedTasks(topic: topic, for: .seconds(1))
                return fired.contains { $0.dueMs >= pausedAt }
            })
            try await Task.sleep(for: .seconds(1))
            fired = try await firedTasks(topic: topic, for: .seconds(1))
            // Due after the pause answered: only the trigger (due when it was asked for).
            let whilePaused = fired.filter { $0.dueMs >= pausedAt }
            #expect(whilePaused.count == 1, "fires while paused: \(whilePaused.map { $0.dueMs - pausedAt })")
            let (_, shown) = try await scheduleCall(client, "/schedules/nightly-report")
            let view = shown as? [String: Any] ?? [:]
            #expect(view["state"] as? String == "paused" && view["trigger_pending"] as? Bool == false)
            #expect((view["fires"] as? Int ?? 0) == fired.count, "fires shown \(view["fires"] ?? "nil"), fired \(fired.count)")
            #expect(view["last_fire"] is String && view["last_fire_delay_ms"] is Int && view["source"] as? String == "api")

            // Resume: fires again.
            let resumedAt = RFC3339.nowMs
            #expect(try await scheduleCall(client, "/schedules/nightly-report/resume", .post).0 == .ok)
            #expect(try await eventually { try await firedTasks(topic: topic, for: .seconds(1)).filter { $0.dueMs > resumedAt }.count >= 2 })

            // DELETE: gone everywhere; again 404.
            #expect(try await scheduleCall(client, "/schedules/nightly-report", .delete).0 == .ok)
            #expect(try await scheduleCall(client, "/schedules/nightly-report", .delete).0 == .notFound)
            #expect(try await scheduleCall(client, "/schedules/nightly-report").0 == .notFound)
            #expect(try await scheduleCall(client, "/schedules/nightly-report/pause", .post).0 == .notFound)
            let dues = try await firedTasks(topic: topic, for: .seconds(1)).map(\.dueMs)
            #expect(Set(dues).count == dues.count, "a due fired twice")
        }
    }

    @Test("bad ids, filters and policies get 400 naming what is wrong", arguments: [
        ("/tasks/generate", #"{"id": "a b", "topic": "t", "message": "m", "every": "1s"}"#, "field 'id'"),
        ("/tasks/generate", #"{"id": "x", "topic": "t", "message": "m"}"#, "field 'id' applies to a schedule"),
        ("/tasks/generate", #"{"topic": "t", "message": "m", "every": "1s", "catchup": "twice"}"#, "field 'catchup'"),
        ("/schedules/x", #"{"topic": "t", "message": "m"}"#, "give one of"),
        ("/schedules/x", #"{"id": "y", "topic": "t", "message": "m", "every": "1s"}"#, "differs"),
    ])
    func badRequests(_ uri: String, _ body: String, _ expected: String) async throws {
        try await withApplication(testConfig()) { client throws in
            let response = try await client.execute(uri: uri, method: uri.hasPrefix("/schedules") ? .put : .post,
                                                    headers: [.contentType: "application/json"], body: ByteBuffer(string: body))
            #expect(response.status == .badRequest)
            #expect(errorText(response)?.contains(expected) == true, "got \(errorText(response) ?? "nil")")
            let filter = try await client.execute(uri: "/schedules?source=robot", method: .get)
            #expect(filter.status == .badRequest)
        }
    }

    @Test("catch-up policies across a daemon stop of six slots: skip fires none of them late and counts them; all fires every one, once", arguments: [CatchUpPolicy.skip, .all])
    func policyAcrossRestart(_ policy: CatchUpPolicy) async throws {
        let topic = try TestBroker.freshTopic("catchup-\(policy.rawValue)")
        let id = "\(policy.rawValue)-\(topic)"
        let config = schedulingConfig()
        try await withApplication(config) { client throws in
            #expect(try await eventually { try await schedulesLive(client) })
            _ = try await postSchedule(client, #"{"id": "\#(id)", "topic": "\#(topic)", "message": "s", "every": "500ms", "catchup": "\#(policy.rawValue)"}"#)
            #expect(try await eventually { try await firedTasks(topic: topic, for: .seconds(1)).count >= 1 })
        }
        let stopped = RFC3339.nowMs
        try await Task.sleep(for: .seconds(3))
        try await withApplication(config) { client throws in
            #expect(try await eventually { try await schedulesLive(client) })
            let restarted = RFC3339.nowMs
            #expect(try await eventually { try await firedTasks(topic: topic, for: .seconds(1)).filter { $0.dueMs > restarted }.count >= 2 })
            // A read of one second can miss what the last fetch had not
            // brought yet: with `all`, read until the grid has no hole (a
            // hole that stays fails below).
            var fired = try await firedTasks(topic: topic, for: .seconds(1))
            if policy == .all {
                _ = try await eventually(timeout: .seconds(20)) {
                    fired = try await firedTasks(topic: topic, for: .seconds(2))
                    let dues = fired.map(\.dueMs).sorted()
                    return zip(dues, dues.dropFirst()).allSatisfy { $1 - $0 == 500 }
                }
            }
            let dues = fired.map(\.dueMs).sorted()
            #expect(Set(dues).count == dues.count, "a slot fired twice")
            let whileDown = fired.filter { $0.dueMs > stopped + 500 && $0.dueMs < restarted - 500 }
            let (_, shown) = try await scheduleCall(client, "/schedules/\(id)")
            let misses = (shown as? [String: Any])?["misses"] as? Int ?? -1
            let metrics = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            switch policy {
            case .skip:
                #expect(whileDown.isEmpty, "late fires: \(whileDown.map { $0.timestampMs - $0.dueMs })")
                #expect(misses >= 4, "\(String(describing: shown))")
                #expect(metrics.contains(#"scheduler_schedule_misses_total{reason="skipped"}"#))
            case .all:
                // Every slot on the grid from the first fire to the last, none left out.
                #expect(zip(dues, dues.dropFirst()).allSatisfy { $1 - $0 == 500 }, "gaps in \(dues.map { $0 - stopped })")
                #expect(whileDown.count >= 3, "slots while down fired: \(whileDown.count)")
                #expect(misses == 0, "\(String(describing: shown))")
            case .once:
                break
            }
        }
    }

    @Test("jitter over HTTP: every fire is taken no earlier than its slot plus its jitter, and within the bound plus the usual delay")
    func jitterBounds() async throws {
        let topic = try TestBroker.freshTopic("jitter")
        try await withApplication(schedulingConfig()) { client throws in
            #expect(try await eventually { try await schedulesLive(client) })
            let id = "jitter-\(topic)"
            _ = try await postSchedule(client, #"{"id": "\#(id)", "topic": "\#(topic)", "message": "j", "every": "200ms", "jitter": "150ms"}"#)
            var fired: [FiredTask] = []
            #expect(try await eventually {
                fired = try await firedTasks(topic: topic, for: .seconds(1))
                return fired.count >= 15
            })
            let (_, shown) = try await scheduleCall(client, "/schedules/\(id)")
            #expect((shown as? [String: Any])?["jitter"] as? String == "150ms")
            var schedule = try Schedule(id: id, task: TaskSpec(topic: topic, message: "j"), kind: .every(ms: 200, anchor: 0), now: 0)
            schedule.jitterMs = 150
            let offsets = fired.map { schedule.jitterOffset($0.dueMs) }
            for (task, offset) in zip(fired, offsets) {
                #expect(task.timestampMs >= task.dueMs + offset, "fired \(task.dueMs + offset - task.timestampMs) ms before its jittered time")
                #expect(task.timestampMs - task.dueMs < 150 + 2000, "fired \(task.timestampMs - task.dueMs) ms after its slot")
            }
            #expect(Set(offsets).count > 3, "no spread: \(offsets)")
        }
    }
}
