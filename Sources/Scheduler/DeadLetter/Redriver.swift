import CRdKafka
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Publishes the dead letters of one dead-letter topic back to the topics
/// they came from, each once, however often a redrive is interrupted.
///
/// Every dead letter is claimed in the redrive ledger (a one-partition topic)
/// before it is published and marked done after the broker acknowledged it;
/// a claim whose job died is taken over once it is `staleAfterMs` old, after
/// searching the target for the message's `x-redrive-of` marker (the job may
/// have published it before dying). The rules are `RedriveLedger`'s; this is
/// the shell that reads and writes Kafka. Its calls block: they run on the
/// redriver's own thread, one redrive at a time per daemon.
///
/// A `Service`: at graceful shutdown a running redrive stops after its
/// current batch (each batch's dead letters are resolved in the ledger
/// before the next is read), before the producer it publishes through is
/// closed; what it did not reach is left for the next redrive. The request
/// that runs a redrive also stops it when the HTTP server's shutdown begins
/// (`DeadLetterRoutes`): the server waits for its requests before any
/// later service hears of the shutdown.
final class Redriver: Service, Sendable {
    private let thread = DedicatedThread(name: "dlq-redrive")
    private let bootstrapServers: String
    private let properties: [String: String]
    private let producer: KafkaProducer
    private let ledgerTopic: String
    private let timeoutMs: Int
    let staleAfterMs: Int64
    private let logger: Logger
    /// The topic being redriven on this daemon, if any.
    private let running = Mutex<String?>(nil)
    /// Set at graceful shutdown: no redrive starts, a running one ends after its batch.
    private let stopping = Atomic<Bool>(false)

    /// Dead letters claimed and published together.
    static let batchSize = 200

    init(bootstrapServers: String, properties: [String: String], producer: KafkaProducer, ledgerTopic: String,
         timeoutMs: Int, logger: Logger) {
        self.bootstrapServers = bootstrapServers
        self.properties = properties
        self.producer = producer
        self.ledgerTopic = ledgerTopic
        self.timeoutMs = timeoutMs
        // A live job holds a claim for one publish (at most `timeoutMs`) and
        // the ledger writes around it.
        self.staleAfterMs = Int64(3 * timeoutMs)
        self.logger = logger
    }

    enum Refusal: Error { case busy(String), stopping }

    /// Waits for graceful shutdown, then lets a running redrive end after
    /// its batch and stops the thread.
    func run() async throws {
        try? await gracefulShutdown()
        beginStop()
        // Jobs run in order on the thread: this one runs once the redrive ended.
        _ = try? await thread.run { () -> Void in }
        thread.stop()
    }

    /// No redrive starts from now on, and a running one ends after its
    /// batch. Called at the graceful shutdown of the HTTP server, which
    /// stops first and waits for its requests (a redrive's among them), and
    /// again at this service's own.
    func beginStop() { stopping.store(true, ordering: .releasing) }

    fileprivate var isStopping: Bool { stopping.load(ordering: .acquiring) }

    /// Redrives `topic`'s dead letters that `filter` takes, up to the end
    /// offsets it has when the redrive begins.
    func redrive(_ topic: String, filter: RedriveFilter) async throws -> RedriveResult {
        try running.withLock { current in
            if isStopping { throw Refusal.stopping }
            if let current { throw Refusal.busy(current) }
            current = topic
        }
        defer { running.withLock { $0 = nil } }
        return try await thread.run { [self] in
            let job = RedriveJob(topic: topic, filter: filter, redriver: self, id: UUID().uuidString)
            return try job.run()
        }
    }

    fileprivate func consumer() throws -> KafkaConsumer {
        // Assigned partitions only, no group membership, no commits. The
        // ledger is read back after every batch's claims: a fetch that found
        // the end is not held back (librdkafka waits fetch.error.backoff.ms,
        // 500 ms by default, before fetching again).
        try KafkaConsumer.make(bootstrapServers: bootstrapServers, groupID: "task-scheduler-redrive",
                               properties: properties.merging(["enable.partition.eof": "true", "fetch.wait.max.ms": "100",
                                                               "fetch.error.backoff.ms": "10"]) { _, new in new })
    }

    fileprivate var producerTimeoutMs: Int { timeoutMs }
    fileprivate var ledger: String { ledgerTopic }
    fileprivate var kafka: KafkaProducer { producer }
    fileprivate var log: Logger { logger }
}

/// One redrive, on the redriver's thread.
private struct RedriveJob {
    let topic: String
    let filter: RedriveFilter
    let redriver: Redriver
    let id: String

    func run() throws -> RedriveResult {
        var result = RedriveResult(topic: topic)
        result.stale_after_ms = redriver.staleAfterMs
        let dlq = try redriver.consumer()
        defer { dlq.close() }
        let ranges = try RangeReader.ranges(topic, consumer: dlq, filter: filter, timeoutMs: redriver.producerTimeoutMs)
        result.ends = ranges.keys.sorted().map { [Int64($0), ranges[$0]!.upperBound] }
        let ranged = ranges.filter { !$0.value.isEmpty }
        guard !ranged.isEmpty else { return result }

        let ledgerConsumer = try redriver.consumer()
        defer { ledgerConsumer.close() }
        var ledger = LedgerReader(topic: redriver.ledger, consumer: ledgerConsumer,
                                  ledger: RedriveLedger(staleAfterMs: redriver.staleAfterMs), timeoutMs: redriver.producerTimeoutMs)
        try ledger.start()

        let ends = try redriver.consumer()
        defer { ends.close() }
        var reader = RangeReader(topic: topic, consumer: dlq, ranges: ranged, timeoutMs: redriver.producerTimeoutMs)
        try reader.start()
        while let batch = try reader.next(Redriver.batchSize) {
            if redriver.isStopping {
                result.error = "the daemon is stopping; redrive again to continue (what was moved stays moved)"
                redriver.log.notice("redrive of \(topic) stopped by the daemon's shutdown: \(result.moved) moved")
                return result
            }
            do {
                try redrive(batch, ledger: &ledger, ends: ends, into: &result)
            } catch {
                // What was claimed and not resolved is taken over once stale.
                result.error = "\(error)"
                redriver.log.error("redrive of \(topic) stopped: \(error)")
                return result
            }
        }
        redriver.log.notice("redrive of \(topic) done: \(result.moved) moved, \(result.already_moved) already moved, \(result.found_moved) found moved, \(result.busy_elsewhere) claimed elsewhere, \(result.failed) failed")
        return result
    }

    private func redrive(_ batch: [ConsumedMessage], ledger: inout LedgerReader, ends endsConsumer: KafkaConsumer,
                         into result: inout RedriveResult) throws {
        var candidates: [(RedriveMarker, ConsumedMessage, OutgoingMessage)] = []
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        for dead in batch {
            guard filter.takes(dead) else { result.filtered_out += 1; continue }
            guard let message = Redriven.message(dead) else { result.no_source += 1; continue }
            let marker = RedriveMarker(topic: dead.topic, partition: dead.partition, offset: dead.offset)
            switch ledger.ledger.beforeClaim(marker, nowMs: now) {
            case .alreadyMoved: result.already_moved += 1
            case .busyElsewhere: result.busy_elsewhere += 1
            default: candidates.append((marker, dead, message))
            }
        }
        guard !candidates.isEmpty else { return }
        // Taken before the claims: whatever this job publishes comes after.
        let ends = try TargetSearch.ends(Set(candidates.map(\.2.topic)), consumer: endsConsumer, timeoutMs: redriver.producerTimeoutMs)
        let targets = Dictionary(candidates.map { ($0.0, $0.2.topic) }, uniquingKeysWith: { first, _ in first })
        let lastClaim = try write(RedriveRecord.records(candidates.map(\.0), state: .claimed, job: id, atMs: now) { ends[targets[$0] ?? ""] })
        try ledger.read(through: lastClaim)

        var toPublish: [(RedriveMarker, OutgoingMessage)] = []
        var searches: [RedriveMarker: (OutgoingMessage, [Int64])] = [:]
        for (marker, _, message) in candidates {
            switch ledger.ledger.afterClaim(marker, job: id) {
            case .publish: toPublish.append((marker, message))
            case .searchTarget(let since): searches[marker] = (message, since)
            case .alreadyMoved: result.already_moved += 1
            default: result.busy_elsewhere += 1
            }
        }
        var done: [RedriveMarker] = []
        var released: [RedriveMarker] = []
        if !searches.isEmpty {
            let found = try TargetSearch.find(searches, consumer: try redriver.consumer(), timeoutMs: redriver.producerTimeoutMs)
            for (marker, (message, _)) in searches.sorted(by: { $0.key < $1.key }) {
                if found[marker] != nil {
                    done.append(marker)
                    result.found_moved += 1
                } else {
                    toPublish.append((marker, message))
                }
            }
        }
        // Enqueued one after another: each key keeps the dead letters' order.
        let deliveries = toPublish.map { (marker, message) in (marker, redriver.kafka.enqueue(message)) }
        for (marker, delivery) in deliveries {
            switch delivery.wait() {
            case .success:
                done.append(marker)
                result.moved += 1
            case .failure(let error):
                // Refused before sending (queue full, too large): surely not
                // published, taken by the next redrive. Anything else (a
                // timeout) may have been written: the claim stays, and once
                // stale the next redrive searches the target first.
                if error.isQueueFull || error.isMessageTooLarge { released.append(marker) }
                result.failed += 1
                if result.error == nil { result.error = "publishing \(marker): \(error)" }
            }
        }
        let at = Int64(Date().timeIntervalSince1970 * 1000)
        let records = RedriveRecord.records(done, state: .done, job: id, atMs: at)
            + RedriveRecord.records(released, state: .released, job: id, atMs: at)
        _ = try write(records)
    }

    /// Writes `records` to the ledger and waits for the broker; the offset of the last.
    private func write(_ records: [RedriveRecord]) throws -> Int64 {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let deliveries = try records.map { record in
            redriver.kafka.enqueue(OutgoingMessage(topic: redriver.ledger, key: Array("\(record.topic)/\(record.partition)".utf8),
                                                   value: Array(try encoder.encode(record)), headers: [], partition: 0))
        }
        var last: Int64 = -1
        for delivery in deliveries {
            switch delivery.wait() {
            case .success(let report): last = max(last, report.offset)
            case .failure(let error): throw RedriveError("writing the redrive ledger '\(redriver.ledger)': \(error)")
            }
        }
        return last
    }
}

struct RedriveError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Reads the ledger's one partition from the beginning, folding its records.
private struct LedgerReader {
    let topic: String
    let consumer: KafkaConsumer
    var ledger: RedriveLedger
    let timeoutMs: Int
    private var nextOffset: Int64 = 0

    init(topic: String, consumer: KafkaConsumer, ledger: RedriveLedger, timeoutMs: Int) {
        self.topic = topic
        self.consumer = consumer
        self.ledger = ledger
        self.timeoutMs = timeoutMs
    }

    /// Reads everything written before now.
    mutating func start() throws {
        var low: Int64 = 0
        var high: Int64 = 0
        let err = rd_kafka_query_watermark_offsets(consumer.handle, topic, 0, &low, &high, Int32(timeoutMs))
        // No ledger yet: nothing was ever redriven.
        if err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION { high = 0 }
        else if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw RedriveError("reading the redrive ledger '\(topic)': \(KafkaError(err))") }
        try consumer.assign([PartitionOffset(topic: topic, partition: 0, offset: PartitionOffset.beginning)])
        if high > 0 { try read(through: high - 1) }
    }

    /// Reads up to and including `offset`.
    mutating func read(through offset: Int64) throws {
        let decoder = JSONDecoder()
        var quiet = ContinuousClock.now
        while nextOffset <= offset {
            guard let raw = rd_kafka_consumer_poll(consumer.handle, 100) else {
                if ContinuousClock.now - quiet > .milliseconds(3 * timeoutMs) {
                    throw RedriveError("the redrive ledger '\(topic)' did not answer past offset \(nextOffset)")
                }
                continue
            }
            defer { rd_kafka_message_destroy(raw) }
            guard raw.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
            quiet = .now
            let message = ConsumedMessage(raw)
            nextOffset = message.offset + 1
            // Records of other kinds or versions are skipped, not fatal.
            if let record = try? decoder.decode(RedriveRecord.self, from: Data(message.value)) { ledger.apply(record) }
        }
    }
}

/// Reads a dead-letter topic's partitions over fixed offset ranges.
private struct RangeReader {
    let topic: String
    let consumer: KafkaConsumer
    let ranges: [Int32: Range<Int64>]
    let timeoutMs: Int
    private var done: Set<Int32> = []

    init(topic: String, consumer: KafkaConsumer, ranges: [Int32: Range<Int64>], timeoutMs: Int) {
        self.topic = topic
        self.consumer = consumer
        self.ranges = ranges
        self.timeoutMs = timeoutMs
    }

    /// Per partition the filter takes: from its start (or `from_offset`) to
    /// its end now (or past `to_offset`).
    static func ranges(_ topic: String, consumer: KafkaConsumer, filter: RedriveFilter, timeoutMs: Int) throws -> [Int32: Range<Int64>] {
        let metadata: TopicMetadata
        do {
            metadata = try KafkaMetadata.fetch(handle: consumer.handle, topic: topic, timeoutMs: timeoutMs)
        } catch let error as KafkaError where error.code == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART.rawValue {
            // Nothing was ever dead-lettered to it: nothing to redrive. Any
            // other failure (brokers unreachable) is the redrive's error,
            // not an empty topic.
            return [:]
        }
        var ranges: [Int32: Range<Int64>] = [:]
        for partition in metadata.partitions where filter.takes(partition: partition) {
            var low: Int64 = 0
            var high: Int64 = 0
            let err = rd_kafka_query_watermark_offsets(consumer.handle, topic, partition, &low, &high, Int32(timeoutMs))
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw RedriveError("the offsets of '\(topic)' [\(partition)]: \(KafkaError(err))") }
            let start = max(low, filter.fromOffset ?? low)
            let end = min(high, filter.toOffset.map { $0 + 1 } ?? high)
            ranges[partition] = start..<max(start, end)
        }
        return ranges
    }

    mutating func start() throws {
        try consumer.assign(ranges.keys.sorted().map { PartitionOffset(topic: topic, partition: $0, offset: ranges[$0]!.lowerBound) })
    }

    /// Up to `count` dead letters in range; nil once every range was read.
    mutating func next(_ count: Int) throws -> [ConsumedMessage]? {
        var batch: [ConsumedMessage] = []
        var quiet = ContinuousClock.now
        while batch.count < count && done.count < ranges.count {
            guard let raw = rd_kafka_consumer_poll(consumer.handle, 100) else {
                if !batch.isEmpty { break }
                if ContinuousClock.now - quiet > .milliseconds(3 * timeoutMs) {
                    throw RedriveError("'\(topic)' did not answer within \(3 * timeoutMs) ms")
                }
                continue
            }
            defer { rd_kafka_message_destroy(raw) }
            let partition = raw.pointee.partition
            guard let range = ranges[partition], !done.contains(partition) else { continue }
            quiet = .now
            if raw.pointee.err == RD_KAFKA_RESP_ERR__PARTITION_EOF {
                // Nothing more on the broker: the range (which ends at most
                // at the end it had at the start) was read.
                _ = range
                done.insert(partition)
                continue
            }
            guard raw.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
            let offset = raw.pointee.offset
            if offset >= range.upperBound { done.insert(partition); continue }
            batch.append(ConsumedMessage(raw))
            if offset + 1 >= range.upperBound { done.insert(partition) }
        }
        return batch.isEmpty && done.count >= ranges.count ? nil : batch
    }
}

/// Looks for redriven messages in their target topics by their marker.
private enum TargetSearch {
    /// The end offset of every partition of each of `topics` (by partition id).
    static func ends(_ topics: Set<String>, consumer: KafkaConsumer, timeoutMs: Int) throws -> [String: [Int64]] {
        var ends: [String: [Int64]] = [:]
        for topic in topics.sorted() {
            let metadata = try KafkaMetadata.fetch(handle: consumer.handle, topic: topic, timeoutMs: timeoutMs)
            ends[topic] = try metadata.partitions.sorted().map { try watermarks(topic, $0, consumer, timeoutMs).high }
        }
        return ends
    }

    private static func watermarks(_ topic: String, _ partition: Int32, _ consumer: KafkaConsumer, _ timeoutMs: Int) throws -> (low: Int64, high: Int64) {
        var low: Int64 = 0
        var high: Int64 = 0
        let err = rd_kafka_query_watermark_offsets(consumer.handle, topic, partition, &low, &high, Int32(timeoutMs))
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw RedriveError("the offsets of '\(topic)' [\(partition)]: \(KafkaError(err))") }
        return (low, high)
    }

    /// Where each marker's message is, among `wanted` (marker: message, where to search from).
    static func find(_ wanted: [RedriveMarker: (OutgoingMessage, [Int64])], consumer: KafkaConsumer, timeoutMs: Int) throws -> [RedriveMarker: String] {
        defer { consumer.close() }
        var found: [RedriveMarker: String] = [:]
        let byTopic = Dictionary(grouping: wanted, by: { $0.value.0.topic })
        for (topic, entries) in byTopic.sorted(by: { $0.key < $1.key }) {
            let markers = Set(entries.map { $0.key.description })
            try search(topic, from: entries.map { $0.value.1 }, markers: markers, consumer: consumer, timeoutMs: timeoutMs).forEach { key, value in
                if let marker = RedriveMarker(key) { found[marker] = value }
            }
        }
        return found
    }

    /// Searches `topic` for `markers`, each partition from the lowest of
    /// `from`'s offsets for it (a partition none of them knows: from its start).
    private static func search(_ topic: String, from: [[Int64]], markers: Set<String>, consumer: KafkaConsumer,
                               timeoutMs: Int) throws -> [String: String] {
        let metadata = try KafkaMetadata.fetch(handle: consumer.handle, topic: topic, timeoutMs: timeoutMs)
        var ranges: [Int32: Range<Int64>] = [:]
        for partition in metadata.partitions {
            let (low, high) = try watermarks(topic, partition, consumer, timeoutMs)
            let known = from.map { Int(partition) < $0.count ? $0[Int(partition)] : 0 }
            let start = max(low, known.min() ?? 0)
            if start < high { ranges[partition] = start..<high }
        }
        guard !ranges.isEmpty else { return [:] }
        var reader = RangeReader(topic: topic, consumer: consumer, ranges: ranges, timeoutMs: timeoutMs)
        try reader.start()
        var found: [String: String] = [:]
        while let batch = try reader.next(500) {
            for message in batch {
                if let marker = message.headers.last(where: { $0.name == Redriven.ofHeader })?.text, markers.contains(marker) {
                    found[marker] = "\(message.topic)/\(message.partition)/\(message.offset)"
                }
            }
        }
        return found
    }
}
