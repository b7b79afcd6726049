import Foundation
@testable import Scheduler

/// A broker of the test's own (the tests slow it down or take it down) with
/// an input topic `in` holding `total` keyed messages and an output topic
/// `out`, and a group config whose process.lua emits each input to `out` as
/// `<partition>:<offset>:<payload>` after `busySeconds` of CPU, logging
/// `seen ...`.
struct EmitRig: Sendable {
    let broker: EmbeddedBroker
    let capture = LogCapture()
    let total: Int
    let partitions: Int
    var config: SchedulerConfig
    let scripts: String

    init(partitions: Int, total: Int, keys: Int, workers: Int, busySeconds: Double = 0, process: String? = nil) async throws {
        broker = try EmbeddedBroker.start()
        try broker.createTopic("in", partitions: partitions)
        try broker.createTopic("out", partitions: partitions)
        try await publish(broker, topic: "in", count: total, keys: keys)
        self.total = total
        self.partitions = partitions
        scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": process ?? """
            local clock = os.clock
            function process(msg)
              local t = clock() while clock() - t < \(busySeconds) do end
              scheduler.emit("out", msg.partition .. ":" .. msg.offset .. ":" .. msg.payload, msg.key)
              scheduler.log("notice", "seen " .. msg.partition .. " " .. msg.offset .. " " .. tostring(msg.key) .. " " .. msg.payload)
            end
            """])
        config = poolConfig(topics: ["in"], workers: workers, sliceMs: 30)
        config.kafka.brokers = [broker.bootstrapServers]
    }

    /// Everything in `out`.
    func output() async throws -> [ConsumedMessage] {
        try await read(broker, topic: "out", partitions: partitions)
    }

    /// The inputs (`<partition>:<offset>`) whose emit is in `out`.
    func emittedInputs() async throws -> Set<String> {
        Set(try await output().map { $0.value.utf8String.split(separator: ":").prefix(2).joined(separator: ":") })
    }

    /// Every input's emit is in `out`.
    func complete() async throws -> Bool {
        try await emittedInputs().count >= total
    }
}
