import CRdKafka
import Foundation
@_spi(Benchmark) import Scheduler

/// The references the benchmark measures the scheduler against, each timed
/// from its first message to its last (start-up and the broker's first
/// fetch are left out, for every reader alike).
enum BenchReaders {
    /// librdkafka alone, the limit: one consumer assigned every partition,
    /// `rd_kafka_consume_batch_queue` on its queue, counting messages (no Lua,
    /// no copying). With `collect`, it also returns each message's key and
    /// payload (for checking an output topic), which is not timed fairly.
    static func librdkafka(
        bootstrap: String, topic: String, partitions: Int, expected: Int, properties: [String: String],
        collect: Bool = false
    ) throws -> (run: ThroughputBenchmark.Run, messages: [(partition: Int32, key: String, value: String)]) {
        let consumer = try KafkaConsumer.make(
            bootstrapServers: bootstrap, groupID: "bench-librdkafka-\(UUID().uuidString.prefix(8))", properties: properties)
        defer { consumer.close() }
        try consumer.assign((0..<partitions).map { PartitionOffset(topic: topic, partition: Int32($0), offset: PartitionOffset.beginning) })
        guard let queue = rd_kafka_queue_get_consumer(consumer.handle) else { throw BenchmarkError("no consumer queue") }
        defer { rd_kafka_queue_destroy(queue) }
        var buffer = [UnsafeMutablePointer<rd_kafka_message_t>?](repeating: nil, count: 1000)
        var count = 0
        var first: ContinuousClock.Instant?
        var cpuAtFirst = 0.0
        var collected: [(Int32, String, String)] = []
        let giveUp = ContinuousClock.now + .seconds(120)
        while count < expected {
            guard ContinuousClock.now < giveUp else { throw BenchmarkError("librdkafka read \(count) of \(expected) messages in 120 s") }
            let got = buffer.withUnsafeMutableBufferPointer { rd_kafka_consume_batch_queue(queue, 100, $0.baseAddress, $0.count) }
            guard got > 0 else { continue }
            if first == nil {
                first = .now
                cpuAtFirst = processCPUSeconds()
            }
            for index in 0..<got {
                guard let message = buffer[index] else { continue }
                if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                    count += 1
                    if collect {
                        let raw = KafkaMessageView(pointer: message)
                        collected.append((raw.partition, raw.key.map { String(decoding: $0, as: UTF8.self) } ?? "",
                                          String(decoding: raw.payload, as: UTF8.self)))
                    }
                }
                rd_kafka_message_destroy(message)
            }
        }
        return (.init(messages: count, seconds: seconds(since: first!), cpuSeconds: processCPUSeconds() - cpuAtFirst), collected)
    }

    /// kcat reading the topic to its end (`-e`), one line per message; timed
    /// from the first bytes on its output to its end.
    static func kcat(bootstrap: String, topic: String, expected: Int) throws -> ThroughputBenchmark.Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["kcat", "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "\n"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        // One reader, chunk by chunk, until end of file: kcat never blocks on a
        // full pipe, and the first chunk's arrival starts the clock.
        var lines = 0
        var first: ContinuousClock.Instant?
        let handle = output.fileHandleForReading
        while true {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            if first == nil { first = .now }
            lines += chunk.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
        }
        let end = ContinuousClock.now
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw BenchmarkError("kcat exited with status \(process.terminationStatus)") }
        guard lines == expected, let first else { throw BenchmarkError("kcat read \(lines) messages, expected \(expected)") }
        return .init(messages: lines, seconds: Double((end - first) / .microseconds(1)) / 1e6)
    }

    /// The peer a user would write instead: Python confluent-kafka (Debian's,
    /// on the same librdkafka), consuming 1000 messages at a time, producing
    /// each to `output` (idempotent, as the scheduler), flushing, then
    /// committing. Timed by the script from its first message to its last commit.
    static func python(bootstrap: String, topic: String, output: String, expected: Int) throws -> ThroughputBenchmark.Run {
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("bench-peer-\(UUID().uuidString).py")
        try pythonPeer.write(to: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: script) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["/usr/bin/python3", script.path, bootstrap, topic, output, String(expected)]
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        let data = stdout.fileHandleForReading.readDataToEndOfFile()
        let errors = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let fields = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isWhitespace)
        guard process.terminationStatus == 0, fields.count == 2, let count = Int(fields[0]), let elapsed = Double(fields[1]) else {
            throw BenchmarkError("python peer failed (status \(process.terminationStatus)): \(String(decoding: errors, as: UTF8.self).suffix(400))")
        }
        return .init(messages: count, seconds: elapsed)
    }

    static let pythonPeer = """
        import sys, time, uuid
        from confluent_kafka import Consumer, Producer
        bootstrap, topic, output, expected = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-python-" + uuid.uuid4().hex[:8],
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
        consumer.subscribe([topic])
        count, first = 0, None
        while count < expected:
            batch = consumer.consume(num_messages=1000, timeout=1.0)
            if not batch:
                continue
            if first is None:
                first = time.monotonic()
            for message in batch:
                if message.error():
                    continue
                while True:
                    try:
                        producer.produce(output, message.value(), message.key())
                        break
                    except BufferError:
                        producer.poll(0.01)
                count += 1
            producer.flush()
            consumer.commit(asynchronous=False)
        print(count, time.monotonic() - first)
        consumer.close()
        """

    /// User + system CPU time of this process so far.
    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        Double((ContinuousClock.now - start) / .microseconds(1)) / 1e6
    }
}
