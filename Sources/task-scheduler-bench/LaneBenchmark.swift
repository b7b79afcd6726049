import CLua
import Foundation
@_spi(Benchmark) import Scheduler
import Logging

/// Key lanes against one lane, in the same run: one partition, `keys` keys,
/// a `process()` that burns about 100 us of CPU per message and emits the
/// message to an output topic (whose per-key order is then checked), the
/// same group of `workers` workers with `lanes = 1` (one worker at a time on
/// the partition: today's limit) and with `lanes = N`.
struct LaneBenchmark: Sendable {
    var messages = 20_000
    var keys = 1000
    var workers = 4
    var lanes = 4
    var sliceMs = 50
    /// Pairs of runs (`lanes = 1`, then `lanes = N`); medians are reported.
    var runs = 3

    struct Measured: Sendable {
        var lanes: Int
        var run: ThroughputBenchmark.Run
        /// Worker busy time per message (the burn plus the scheduler's own work).
        var busyMicrosPerMessage: Double
        var gaps: [Duration]
        var handoffs: Int
        var problems: [String]
    }

    /// Loop iterations that take about 100 us of one core in a worker,
    /// calibrated once for the whole benchmark (the fastest of five timed
    /// runs), so `lanes = 1` and `lanes = N` do exactly the same work per
    /// message. The loop runs as a worker's script does: in a state with the
    /// scheduler's allocator and under its budget hook (which makes a tight
    /// loop about 3.5 times slower than in a plain state). Calibrating in each
    /// run's script, as this benchmark first did, gave the two sides
    /// different work: ratios from 1.4x to 2.0x on one quiet machine.
    static func calibrateIterations() throws -> Int {
        let lua = try BenchLuaState(memoryLimit: 64 << 20)
        let state = lua.state
        luaL_openlibs(state)
        let calibration = 1_000_000
        guard luaL_loadstring(state, "local x = 0 for i = 1, \(calibration) do x = x + i end return x") == LUA_OK else {
            throw BenchmarkError("calibration loop did not compile")
        }
        let chunk = lua_gettop(state)
        var fastest = Duration.seconds(1_000)
        for _ in 0..<5 {
            lua_pushvalue(state, chunk)
            let started = ContinuousClock.now
            clua_begin_call(state, 1 << 40, 60_000)
            let status = lua_pcallk(state, 0, 1, 0, 0, nil)
            clua_end_call(state)
            guard status == LUA_OK else { throw BenchmarkError("calibration loop failed") }
            fastest = min(fastest, ContinuousClock.now - started)
            lua_settop(state, chunk)
        }
        withExtendedLifetime(lua) {}
        let seconds = Double(fastest.components.seconds) + Double(fastest.components.attoseconds) * 1e-18
        return max(1, Int(Double(calibration) * 0.0001 / max(seconds, 1e-9)))
    }

    /// `process()`: a fixed loop of `iterations` (about 100 us, the same for
    /// every run: it does not shrink when several workers share the CPU, as a
    /// loop on `os.clock()`, the process's CPU time, would); then one emit.
    static func burning(iterations: Int, to topic: String) -> String {
        """
        local iterations = \(iterations)
        function process(msg)
          local y = 0
          for i = 1, iterations do y = y + i end
          scheduler.emit("\(topic)", msg.payload, msg.key)
        end
        """
    }

    func run(broker: EmbeddedBroker, producer: KafkaProducer, publisher: TaskPublisher, logger: Logger,
             report: @Sendable (String) -> Void) async throws -> [Measured] {
        let topic = "bench-lanes"
        try broker.createTopic(topic, partitions: 1)
        var deliveries: [PendingDelivery] = []
        for index in 0..<messages {
            deliveries.append(producer.enqueue(OutgoingMessage(topic: topic, key: Array("k\(index % keys)".utf8), value: Array(String(index).utf8))))
        }
        for delivery in deliveries { _ = try await delivery.report() }
        report("lanes backlog: \(messages) messages, \(keys) keys, 1 partition")
        let iterations = try Self.calibrateIterations()
        report("lanes: process() loops \(iterations) times per message (about 100 us of one core, calibrated once)")
        var results: [Measured] = []
        for (attempt, laneCount) in (1...runs).flatMap({ attempt in [1, lanes].map { (attempt, $0) } }) {
            let output = "bench-lanes-out-\(laneCount)-\(attempt)"
            try broker.createTopic(output, partitions: 1)
            let catalog = try await ScriptCatalog.load(directory: BenchScripts.make(process: Self.burning(iterations: iterations, to: output)), limits: .standard,
                                                       needsProcess: true, logger: logger)
            var group = GroupConfig(name: "bench-lanes-\(laneCount)-\(UUID().uuidString.prefix(6))", topics: [topic], workers: workers, sliceMs: sliceMs)
            group.maxAttempts = 1
            group.lanes = laneCount
            let measured = try await BenchScheduler(bootstrap: broker.bootstrapServers, partitions: 1, messages: messages, publisher: publisher, logger: logger)
                .run(group: group, catalog: catalog, waitForEmits: true)
            let problems = try check(broker: broker, topic: output)
            let result = Measured(lanes: laneCount, run: measured.run, busyMicrosPerMessage: measured.busySeconds * 1e6 / Double(messages),
                                  gaps: measured.gaps, handoffs: measured.handoffs, problems: problems)
            report("lanes run \(attempt), lanes = \(laneCount): \(messages) messages in \(String(format: "%.3f", measured.run.seconds)) s = \(Int(measured.run.rate)) msg/s, "
                   + String(format: "workers busy %.0f us per message, ", result.busyMicrosPerMessage)
                   + (measured.run.cpuMicrosPerMessage.map { String(format: "process CPU %.0f us per message, ", $0) } ?? "")
                   + "\(measured.handoffs) handoffs, output: \(problems.isEmpty ? "none lost, none doubled, per-key order kept" : problems.joined(separator: ", "))")
            results.append(result)
        }
        return results
    }

    /// Every sequence number exactly once in the output, per key increasing.
    private func check(broker: EmbeddedBroker, topic: String) throws -> [String] {
        let read = try BenchReaders.librdkafka(bootstrap: broker.bootstrapServers, topic: topic, partitions: 1,
                                               expected: messages, properties: [:], collect: true).messages
        var seen = [Bool](repeating: false, count: messages)
        var lastPerKey: [String: Int] = [:]
        var doubled = 0
        var outOfOrder = 0
        for message in read {
            guard let sequence = Int(message.value), sequence < messages else { continue }
            if seen[sequence] { doubled += 1 }
            seen[sequence] = true
            if let last = lastPerKey[message.key], last > sequence { outOfOrder += 1 }
            lastPerKey[message.key] = sequence
        }
        let lost = seen.reduce(0) { $0 + ($1 ? 0 : 1) }
        return (lost > 0 ? ["\(lost) lost"] : []) + (doubled > 0 ? ["\(doubled) doubled"] : [])
            + (outOfOrder > 0 ? ["\(outOfOrder) out of per-key order"] : [])
    }
}
