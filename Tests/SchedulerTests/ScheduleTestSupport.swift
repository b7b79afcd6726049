import Foundation
import HummingbirdTesting
import Testing
@testable import Scheduler

/// `testConfig()` with this daemon firing schedules.
func schedulingConfig() -> SchedulerConfig {
    var config = testConfig()
    config.schedules.enabled = true
    return config
}

/// `GET /health`'s `schedules.live`: this daemon holds schedule partitions and read them.
func schedulesLive(_ client: some TestClientProtocol) async throws -> Bool {
    let response = try await client.execute(uri: "/health", method: .get)
    let object = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
    return (object?["schedules"] as? [String: Any])?["live"] as? Bool ?? false
}

/// Posts a scheduled task; returns the answer's JSON object (id, next_due, kind).
func postSchedule(_ client: some TestClientProtocol, _ body: String) async throws -> [String: Any] {
    let response = try await post(client, body)
    #expect(response.status == .ok, "POST \(body): \(String(buffer: response.body))")
    return (try? JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]) ?? [:]
}

/// One fired task read back: its schedule id, due time, and when the broker stored it.
struct FiredTask: Sendable {
    let id: String
    let dueMs: Int64
    let message: String
    let timestampMs: Int64

    init?(_ message: ConsumedMessage) {
        guard let id = message.headers.first(where: { $0.name == ScheduleFirer.idHeader })?.text,
              let due = message.headers.first(where: { $0.name == ScheduleFirer.dueHeader })?.text else { return nil }
        self.id = id
        self.dueMs = ms(due)
        self.message = message.value.utf8String
        self.timestampMs = message.timestampMs
    }
}

/// Every fired task on `topic` so far (reads for `for`: the mock broker's
/// first fetch takes about half a second).
func firedTasks(topic: String, partitions: Int = 4, for duration: Duration = .seconds(2)) async throws -> [FiredTask] {
    try await readAll(topic: topic, partitions: partitions, count: Int.max, timeout: duration).compactMap(FiredTask.init)
}
