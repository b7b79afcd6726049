import Foundation
import Testing
@testable import Scheduler

/// Emits are pipelined: `scheduler.emit` returns at once, and an input offset
/// is committed only once its message and every earlier one of the partition
/// were processed and all their emits acknowledged.
@Suite("Pipelined emits", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct PipelinedEmitTests {
    @Test("while the broker is slow to acknowledge emits, the committed offset never passes an emit that was not acknowledged; nothing lost, nothing doubled, per-key order kept")
    func slowAcknowledgements() async throws {
        let rig = try await EmitRig(partitions: 2, total: 1500, keys: 20, workers: 3, busySeconds: 0.002)
        let (broker, capture, config, total) = (rig.broker, rig.capture, rig.config, rig.total)
        defer { broker.shutdown() }
        let group = config.groups[0].name
        let observer = try KafkaConsumer.make(bootstrapServers: broker.bootstrapServers, groupID: group)
        defer { observer.close() }
        let (samples, violations) = try await withPool(config, scripts: rig.scripts, logger: capture.logger) { () async throws -> (Int, [String]) in
            #expect(await eventually { capture.lines(startingWith: "seen ").count >= 100 })
            // From now on Produce answers take 1.5 s; fetches and commits stay fast.
            broker.delayNext(.produce, count: 6, milliseconds: 1500)
            var samples = 0
            var violations: [String] = []
            let finished = try await eventually(timeout: .seconds(90)) {
                // Committed first, then the output: whatever was committed must
                // already be there (its acknowledgement came before the commit).
                let committed = try await offThePool {
                    try observer.committed((0..<2).map { PartitionOffset(topic: "in", partition: Int32($0), offset: -1) }, timeoutMs: 5000)
                }
                let emitted = try await rig.emittedInputs()
                for position in committed where position.offset > 0 {
                    samples += 1
                    for offset in 0..<position.offset where !emitted.contains("\(position.partition):\(offset)") {
                        violations.append("\(position.partition):\(offset) committed (at \(position.offset)) before its emit was acknowledged")
                    }
                }
                return committed.reduce(0) { $0 + max(0, $1.offset) } >= total
            }
            #expect(finished, "every input offset committed")
            return (samples, violations)
        }
        #expect(samples >= 4, "the commit was observed while the run went on")
        #expect(violations.isEmpty, "\(violations.count) violations, e.g. \(violations.prefix(3))")
        let output = try await rig.output()
        #expect(output.count == total)
        #expect(Set(output.map { $0.value.utf8String }).count == total)
        expectKeyOrder(output)
    }

    @Test("emits refused by the broker are not lost: the partition is read again from the first failed message, and processing goes on", arguments: [
        // Errors the producer does not retry. (TOPIC_AUTHORIZATION_FAILED is
        // not transient for librdkafka: it refuses the topic locally until its
        // next metadata refresh, so such inputs end in the dead-letter topic.)
        Int32(10),  // MESSAGE_TOO_LARGE
        Int32(87),  // INVALID_RECORD
    ])
    func refusedEmits(code: Int32) async throws {
        // 10 ms per message: emits are still being produced when the errors
        // are injected (without it the 400 inputs could all be emitted and
        // acknowledged before, and no Produce request would get an error).
        var rig = try await EmitRig(partitions: 2, total: 400, keys: 10, workers: 2, busySeconds: 0.01)
        let (broker, capture) = (rig.broker, rig.capture)
        defer { broker.shutdown() }
        rig.config.groups[0].maxAttempts = 5
        rig.config.groups[0].retryBackoffMs = 10
        try await withPool(rig.config, scripts: rig.scripts, logger: capture.logger) { [rig] in
            #expect(await eventually { capture.lines(startingWith: "seen ").count >= 50 })
            broker.failNext(.produce, count: 3, code: code)
            let complete = try await eventually(timeout: .seconds(60)) { try await rig.complete() }
            #expect(complete, "every input's emit reached the output")
        }
        let rewinds = capture.all.filter { $0.message.hasPrefix("emits of offset") && $0.message.contains("reading") }
        #expect(!rewinds.isEmpty, "the failure was seen and the partition read again")
        // Duplicates only from a rewind on: each repeated input is at or
        // after the offset its partition was read again from.
        let output = try await rig.output()
        let inputs = output.map { $0.value.utf8String.split(separator: ":").prefix(2).map(String.init) }
        var counts: [String: Int] = [:]
        for input in inputs { counts[input.joined(separator: ":"), default: 0] += 1 }
        let rewindFrom = Dictionary(rewinds.compactMap { record -> (String, Int64)? in
            guard let partition = record.metadata[LogKey.partition], let offset = record.metadata[LogKey.offset].flatMap({ Int64($0) }) else { return nil }
            return (partition, offset)
        }, uniquingKeysWith: min)
        for (input, count) in counts where count > 1 {
            let parts = input.split(separator: ":")
            let earliest = rewindFrom[String(parts[0])]
            #expect(earliest.map { Int64(parts[1])! >= $0 } == true, "\(input) doubled without a rewind at or before it")
        }
        #expect(capture.all.allSatisfy { !$0.message.contains("dead-lettered") }, "a transient refusal dead-letters nothing")
    }

    @Test("broker down longer than the delivery timeout: emits time out, the partitions are read again, and every input's emit reaches the output")
    func brokerDown() async throws {
        var rig = try await EmitRig(partitions: 2, total: 3000, keys: 10, workers: 2, busySeconds: 0.003)
        let (broker, capture) = (rig.broker, rig.capture)
        defer { broker.shutdown() }
        var config = rig.config
        config.producer.timeoutMs = 1000
        // The group session outlives the outage, so the partitions stay with
        // this daemon and the worker's own recovery is what is tested.
        config.kafka.properties["session.timeout.ms"] = "30000"
        config.kafka.properties["heartbeat.interval.ms"] = "1000"
        config.groups[0].maxAttempts = 50
        config.groups[0].retryBackoffMs = 20
        rig.config = config
        try await withPool(config, scripts: rig.scripts, logger: capture.logger) { [rig] in
            #expect(await eventually { capture.lines(startingWith: "seen ").count >= 100 })
            broker.setBrokerDown(1)
            #expect(await eventually(timeout: .seconds(20)) {
                capture.all.contains { $0.message.hasPrefix("emits of offset") && $0.message.contains("timed out") }
            }, "an emit timed out while the broker was down")
            broker.setBrokerUp(1)
            let complete = try await eventually(timeout: .seconds(60)) { try await rig.complete() }
            #expect(complete, "every input's emit reached the output")
        }
        #expect(!capture.all.contains { $0.message.contains("dead-lettered") }, "an outage dead-letters nothing within max_attempts")
    }

    @Test("an emitted payload, key and headers are published byte for byte (binary, invalid UTF-8, NUL; a null header value is false in Lua and null again in Kafka)")
    func binaryEmits() async throws {
        let topic = try TestBroker.freshTopic("binary-in", partitions: 1)
        let output = try TestBroker.freshTopic("binary-out", partitions: 1)
        let payload: [UInt8] = Array(0...255) + [0xC3, 0x28, 0xFF, 0x00]
        let key: [UInt8] = [0x00, 0xFE, 0x80, 0x41]
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 5000)
        let headers = [KafkaHeader(name: "binary", bytes: [0, 0xFF, 0xC3, 0x28]), KafkaHeader(name: "empty", bytes: []),
                       KafkaHeader(name: "null", bytes: nil), KafkaHeader("text", "plain")]
        _ = try await producer.send(OutgoingMessage(topic: topic, key: key, value: payload, headers: headers))
        await producer.close(timeoutMs: 1000)
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": """
            function process(msg)
              assert(msg.headers.null == false, "a null header value is false")
              assert(msg.headers.empty == "", "an empty header value is the empty string")
              scheduler.emit("\(output)", msg.payload, msg.key, msg.headers)
            end
            """])
        let emitted = try await withPool(poolConfig(topics: [topic], workers: 1, sliceMs: 50), scripts: scripts, logger: quietLogger) {
            try await readAll(topic: output, partitions: 1, count: 1)
        }
        #expect(emitted.first?.value == payload)
        #expect(emitted.first?.key == key)
        #expect(emitted.first?.headers == headers)
    }

    @Test("the group's emits in flight stay within max_inflight_emits, and waiting for room is not a failure")
    func boundedInflight() async throws {
        let broker = try EmbeddedBroker.start()
        defer { broker.shutdown() }
        try broker.createTopic("in", partitions: 4)
        try broker.createTopic("out", partitions: 4)
        let total = 300
        try await publish(broker, topic: "in", count: total, keys: 40)
        broker.setRoundTripTime(1, milliseconds: 50)
        let capture = LogCapture()
        // Each message emits 3 tasks: a limit of 5 forces waiting at nearly every message.
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": """
            function process(msg)
              for i = 1, 3 do scheduler.emit("out", msg.partition .. ":" .. msg.offset .. ":" .. i, msg.key) end
            end
            """])
        var config = poolConfig(topics: ["in"], workers: 3, sliceMs: 30)
        config.kafka.brokers = [broker.bootstrapServers]
        config.groups[0].maxInflightEmits = 5
        let app = try await buildApplication(LaunchOptions(config: config, scriptsDirectory: scripts, logger: capture.logger))
        let peak = try await app.test(.live) { client in
            let done = try await eventually(timeout: .seconds(90)) {
                try await read(broker, topic: "out", partitions: 4).count >= total * 3
            }
            #expect(done)
            let response = try await client.execute(uri: "/groups", method: .get)
            let groups = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [[String: Any]]
            let group = groups?.first
            #expect(group?["max_inflight_emits"] as? Int == 5)
            return group?["emits_in_flight_peak"] as? Int ?? -1
        }
        #expect(peak <= 5)
        #expect(peak > 0, "emits were observed in flight")
        #expect(!capture.all.contains { $0.message.hasPrefix("process() failed") }, "waiting for room is never a failed attempt")
        let output = try await read(broker, topic: "out", partitions: 4)
        #expect(Set(output.map { $0.value.utf8String }).count == total * 3)
    }
}

/// Checks that per key the emitted inputs' offsets only go up.
func expectKeyOrder(_ output: [ConsumedMessage]) {
    var last: [String: Int64] = [:]
    for message in output {
        let key = message.key.map { String(decoding: $0, as: UTF8.self) } ?? ""
        let parts = message.value.utf8String.split(separator: ":")
        guard parts.count >= 2, let offset = Int64(parts[1]) else { continue }
        let id = key + "@" + parts[0]
        if let previous = last[id] { #expect(previous < offset, "key \(key) out of order: \(previous) then \(offset)") }
        last[id] = offset
    }
}

/// Publishes `count` keyed messages (`k<i % keys>`, payload `<key>:<n>`) to a broker of the test's own.
func publish(_ broker: EmbeddedBroker, topic: String, count: Int, keys: Int) async throws {
    let producer = try KafkaProducer.make(bootstrapServers: broker.bootstrapServers, deliveryTimeoutMs: 10_000)
    var deliveries: [PendingDelivery] = []
    for index in 0..<count {
        let key = "k\(index % keys)"
        deliveries.append(producer.enqueue(OutgoingMessage(topic: topic, key: Array(key.utf8), value: Array("\(key)-\(index / keys)".utf8))))
    }
    for delivery in deliveries { _ = try await delivery.report() }
    await producer.close(timeoutMs: 5000)
}

/// Everything in `topic` on a broker of the test's own, read to its end.
func read(_ broker: EmbeddedBroker, topic: String, partitions: Int) async throws -> [ConsumedMessage] {
    try await offThePool {
        let consumer = try KafkaConsumer.make(bootstrapServers: broker.bootstrapServers, groupID: "reader-\(UUID().uuidString)")
        defer { consumer.close() }
        var ends: [Int32: Int64] = [:]
        for partition in 0..<Int32(partitions) {
            ends[partition] = try consumer.queryWatermarks(topic: topic, partition: partition, timeoutMs: 5000).high
        }
        try consumer.assign((0..<partitions).map { PartitionOffset(topic: topic, partition: Int32($0), offset: PartitionOffset.beginning) })
        var messages: [ConsumedMessage] = []
        var next: [Int32: Int64] = [:]
        let deadline = ContinuousClock.now + .seconds(15)
        while ends.contains(where: { next[$0.key, default: 0] < $0.value }) && ContinuousClock.now < deadline {
            if let message = try consumer.poll(timeoutMs: 100) {
                messages.append(message)
                next[message.partition] = message.offset + 1
            }
        }
        return messages
    }
}

/// Runs blocking librdkafka calls on a thread of their own, not the concurrency pool.
func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    let thread = DedicatedThread(name: "test-blocking")
    defer { thread.stop() }
    return try await thread.run(body)
}

@Suite("process_batch(msgs) and process_columns(batch)", .sharesMachine)
struct ProcessBatchTests {
    /// The same work in both batch hooks: a batch holding "bad" reports it;
    /// otherwise every message is emitted with its partition and offset.
    static func batchHook(_ hook: String, output: String) -> String {
        hook == "process_batch" ? """
            function process_batch(msgs)
              local results = {}
              for i, msg in ipairs(msgs) do
                if msg.payload == "bad" then results[i] = false end
              end
              for i, msg in ipairs(msgs) do
                if results[i] == false then return results end
              end
              scheduler.log("notice", "batch " .. #msgs .. " from " .. msgs[1].partition .. ":" .. msgs[1].offset .. " " .. msgs[1].topic)
              for _, msg in ipairs(msgs) do
                scheduler.emit("\(output)", msg.partition .. ":" .. msg.offset .. ":" .. msg.payload, msg.key)
              end
            end
            """ : """
            function process_columns(batch)
              local results, failed = {}, false
              for i = 1, batch.count do
                if batch.payloads[i] == "bad" then results[i] = false; failed = true end
              end
              if failed then return results end
              assert(#batch.offsets == batch.count and #batch.keys == batch.count and #batch.timestamps == batch.count)
              assert(type(batch.headers) == "table" and batch.group ~= nil and batch.worker ~= nil)
              scheduler.log("notice", "batch " .. batch.count .. " from " .. batch.partition .. ":" .. batch.offsets[1] .. " " .. batch.topic)
              for i = 1, batch.count do
                scheduler.emit("\(output)", batch.partition .. ":" .. batch.offsets[i] .. ":" .. batch.payloads[i], batch.keys[i])
              end
            end
            """
    }

    @Test("a batch hook gets a partition's messages in order and its emits arrive in key order; a failed message sends the batch through process() one by one (retry, dead letter)",
          arguments: ["process_batch", "process_columns"])
    func batches(hook: String) async throws {
        let topic = try TestBroker.freshTopic("batch-in", partitions: 2)
        let output = try TestBroker.freshTopic("batch-out", partitions: 2)
        let total = 2000
        try await publishKeyed(topic: topic, count: total, keys: 20)
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 5000)
        _ = try await producer.send(OutgoingMessage(topic: topic, key: Array("k0".utf8), value: Array("bad".utf8)))
        await producer.close(timeoutMs: 1000)
        let capture = LogCapture()
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": Self.batchHook(hook, output: output) + """

            function process(msg)
              if msg.payload == "bad" then return false, "bad message" end
              scheduler.emit("\(output)", msg.partition .. ":" .. msg.offset .. ":" .. msg.payload, msg.key)
            end
            """])
        var config = poolConfig(topics: [topic], workers: 3, sliceMs: 30)
        config.groups[0].maxAttempts = 2
        config.groups[0].retryBackoffMs = 1
        let emitted = try await withPool(config, scripts: scripts, logger: capture.logger) {
            var emitted: [ConsumedMessage] = []
            try await eventually(timeout: .seconds(60)) {
                emitted = try await readAll(topic: output, partitions: 2, count: Int.max, timeout: .seconds(1))
                return Set(emitted.map { $0.value.utf8String }).count >= total
            }
            return emitted
        }
        let distinct = Set(emitted.map { $0.value.utf8String })
        #expect(distinct.count == total, "every good message emitted (lost \(total - distinct.count))")
        let batches = capture.lines(startingWith: "batch ")
        #expect(!batches.isEmpty, "batches were used")
        #expect(batches.allSatisfy { $0.message.hasSuffix(" " + topic) }, "the batch names its topic")
        #expect(capture.all.contains { $0.message.contains("dead-lettered") && $0.message.contains("bad message") })
        #expect(!capture.all.contains { $0.message.contains("\(hook)() failed") }, "the hook itself never failed")
        // "<partition>:<offset>:k<n>:<seq>", emitted with the input's key "k<n>".
        let wrongKeys = emitted.filter { $0.key.map { String(decoding: $0, as: UTF8.self) } != $0.value.utf8String.split(separator: ":").dropFirst(2).first.map(String.init) }
        #expect(wrongKeys.isEmpty, "every emit carries its message's key: \(wrongKeys.prefix(3))")
        expectKeyOrder(emitted)
    }

    @Test("process_columns reads batch.headers when the script asks, with the same values as msg.headers; a batch kept past its call refuses to read them")
    func columnsHeaders() async throws {
        let topic = try TestBroker.freshTopic("columns-headers-in", partitions: 1)
        let output = try TestBroker.freshTopic("columns-headers-out", partitions: 1)
        let total = 300  // more than one batch (at most 256 messages)
        // Every third message has no headers; the others have three, named in
        // the order the emit sorts them.
        func headers(_ index: Int) -> [KafkaHeader] {
            index % 3 == 0 ? [] : [KafkaHeader(name: "binary", bytes: [0, 0xFF, UInt8(index % 256)]),
                                   KafkaHeader(name: "null", bytes: nil), KafkaHeader("text", "t\(index)")]
        }
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 5000)
        for index in 0..<total {
            _ = try await producer.send(OutgoingMessage(topic: topic, key: Array("k".utf8), value: Array("m\(index)".utf8), headers: headers(index)))
        }
        await producer.close(timeoutMs: 1000)
        let capture = LogCapture()
        // The first batch is kept without reading its headers and reported as
        // failed (so process() handles it); later calls try the kept one.
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": """
            local kept
            function process_columns(batch)
              if not kept then
                kept = batch
                scheduler.log("notice", "metatable " .. tostring(getmetatable(batch)))
                return {false}
              end
              local ok, err = pcall(function() return kept.headers end)
              scheduler.log("notice", "kept batch " .. tostring(ok) .. " " .. tostring(err))
              for i = 1, batch.count do
                scheduler.emit("\(output)", batch.payloads[i], batch.keys[i], batch.headers[i] or {})
              end
            end

            function process(msg)
              scheduler.emit("\(output)", msg.payload, msg.key, msg.headers)
            end
            """])
        let emitted = try await withPool(poolConfig(topics: [topic], workers: 1, sliceMs: 1000), scripts: scripts, logger: capture.logger) {
            try await readAll(topic: output, partitions: 1, count: total, timeout: .seconds(30))
        }
        #expect(emitted.count == total)
        for message in emitted {
            guard let index = Int(message.value.utf8String.dropFirst()) else { Issue.record("unexpected payload"); continue }
            #expect(message.headers == headers(index), "headers of message \(index)")
        }
        #expect(capture.lines(startingWith: "metatable ").map(\.message) == ["metatable process_columns batch"])
        let kept = capture.lines(startingWith: "kept batch ")
        #expect(!kept.isEmpty, "a later batch went through process_columns")
        #expect(kept.allSatisfy { $0.message.contains("kept batch false") && $0.message.contains("can only be read during the process_columns call") },
                "\(kept.map(\.message))")
    }
}

@Suite("The msg table", .sharesMachine)
struct MessageTableTests {
    @Test("msg names its topic, partition, offset, key, payload, group and the worker that holds it, through process() and process_batch(), across handoffs", arguments: [false, true])
    func fields(batch: Bool) async throws {
        let topic = try TestBroker.freshTopic("msg-fields", partitions: 2)
        let total = 600
        try await publishKeyed(topic: topic, count: total, keys: 6)
        let capture = LogCapture()
        let describe = #"scheduler.log("notice", "msg " .. msg.topic .. " " .. msg.partition .. " " .. msg.offset .. " " .. msg.key .. " " .. msg.payload .. " " .. msg.group .. " " .. msg.worker .. " " .. type(msg.timestamp) .. " " .. type(msg.headers))"#
        let script = batch
            ? "function process_batch(msgs) for _, msg in ipairs(msgs) do \(describe) end end\nfunction process(msg) \(describe) end"
            : "function process(msg) \(describe) end"
        // Three workers for two partitions and short slices: the partitions change hands.
        let config = poolConfig(topics: [topic], workers: 3, sliceMs: 10)
        let group = config.groups[0].name
        let records = try await withPool(config, scripts: try makeScripts(["generate.lua": idleGenerate, "process.lua": script]), logger: capture.logger) {
            await eventually(timeout: .seconds(60)) { capture.lines(startingWith: "msg ").count >= total }
            return capture.lines(startingWith: "msg ")
        }
        var offsets: Set<String> = []
        for record in records {
            let parts = record.message.split(separator: " ").map(String.init)
            try #require(parts.count == 10, "\(record.message)")
            #expect(parts[1] == topic)
            #expect(parts[4] == "k\(parts[5].split(separator: ":")[0].dropFirst())", "the key goes with its payload: \(record.message)")
            #expect(parts[6] == group)
            #expect(parts[7] == record.metadata[LogKey.worker], "msg.worker is the worker that processed it: \(record.message)")
            #expect(parts[8] == "number" && parts[9] == "table")
            offsets.insert("\(parts[2]):\(parts[3])")
        }
        #expect(offsets.count == total)
        #expect(Set(records.compactMap { $0.metadata[LogKey.worker] }).count >= 2, "the partitions changed hands")
    }

    @Test("one worker reading two topics gives each message its own topic (the topic string is reused only while it matches)", arguments: [false, true])
    func topics(batch: Bool) async throws {
        let first = try TestBroker.freshTopic("msg-topic-a", partitions: 1)
        let second = try TestBroker.freshTopic("msg-topic-b", partitions: 1)
        let each = 200
        // Payload "k<i mod 4>:<i / 4>": below 50 on `first`, from 50 on `second`.
        try await publishKeyed(topic: first, count: each, keys: 4)
        try await publishKeyed(topic: second, count: each, keys: 4, startSequence: each)
        let capture = LogCapture()
        let describe = #"scheduler.log("notice", "msg " .. msg.topic .. " " .. msg.payload)"#
        let script = batch
            ? "function process_batch(msgs) for _, msg in ipairs(msgs) do \(describe) end end\nfunction process(msg) \(describe) end"
            : "function process(msg) \(describe) end"
        // One worker, short slices: it moves between the two topics' partitions.
        let config = poolConfig(topics: [first, second], workers: 1, sliceMs: 5)
        let records = try await withPool(config, scripts: try makeScripts(["generate.lua": idleGenerate, "process.lua": script]), logger: capture.logger) {
            await eventually(timeout: .seconds(60)) { capture.lines(startingWith: "msg ").count >= 2 * each }
            return capture.lines(startingWith: "msg ")
        }
        var seen: [String: Int] = [:]
        for record in records {
            let parts = record.message.split(separator: " ").map(String.init)
            try #require(parts.count == 3, "\(record.message)")
            let sequence = Int(parts[2].split(separator: ":")[1]) ?? -1
            #expect(parts[1] == (sequence < each / 4 ? first : second), "the topic the message came from: \(record.message)")
            seen[parts[1], default: 0] += 1
        }
        #expect(seen[first] == each && seen[second] == each, "\(seen)")
    }
}
