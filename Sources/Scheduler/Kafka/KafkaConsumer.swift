import CRdKafka
import Foundation
import Synchronization

/// A topic partition and an offset within it.
public struct PartitionOffset: Sendable, Hashable {
    /// Topic name.
    public var topic: String
    /// Partition id.
    public var partition: Int32
    /// Offset; `PartitionOffset.beginning` / `.end` for the logical offsets.
    public var offset: Int64

    /// Creates a topic-partition-offset triple.
    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }

    /// librdkafka's `RD_KAFKA_OFFSET_BEGINNING`.
    public static let beginning = Int64(RD_KAFKA_OFFSET_BEGINNING)
    /// librdkafka's `RD_KAFKA_OFFSET_END`.
    public static let end = Int64(RD_KAFKA_OFFSET_END)
}

/// A Kafka consumer (one `rd_kafka_t` of type consumer).
///
/// Its blocking calls (`poll`, `close`, synchronous `commit`) must run on a
/// dedicated thread, never on Swift's concurrency pool.
public final class KafkaConsumer: @unchecked Sendable {
    // Safe because rd_kafka_t is thread-safe; this class adds no mutable
    // state except `subscribed` (a Mutex) and its lifecycle in
    // `gate`, which every call consults: refused once `close` began (but the
    // commits and reads the closing itself needs), none inside once the
    // handle is destroyed.
    /// The librdkafka handle; for the benchmark's librdkafka-only reader.
    @_spi(Benchmark) public let handle: OpaquePointer
    private let gate = HandleGate()
    /// `subscribe` was called (the consumer joins a group).
    private let subscribed = Mutex(false)
    /// Closing before the first assignment would abort (`AssignorChoice.closeBeforeAssignmentAborts`).
    private let abortsIfClosedUnassigned: Bool

    /// Creates a consumer in group `groupID`. By default it starts at the
    /// earliest offset when the group has no committed offset, and commits
    /// only when told to (`enable.auto.commit=false`).
    public static func make(
        bootstrapServers: String,
        groupID: String,
        properties: [String: String] = [:],
        rebalance: RebalanceHandler? = nil
    ) throws -> KafkaConsumer {
        var settings: [String: String] = [
            "bootstrap.servers": bootstrapServers,
            "group.id": groupID,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": "false",
            "enable.auto.offset.store": "false",
            "client.id": "task-scheduler",
        ]
        settings.merge(properties) { _, new in new }
        let conf = try KafkaSettings.makeConf(settings)
        KafkaSettings.routeLogs(conf)
        let context = rebalance.map { Unmanaged.passRetained($0) }
        if let context {
            rd_kafka_conf_set_opaque(conf, context.toOpaque())
            rd_kafka_conf_set_rebalance_cb(conf) { rk, err, partitions, opaque in
                guard let rk, let opaque else { return }
                let handler = Unmanaged<RebalanceHandler>.fromOpaque(opaque).takeUnretainedValue()
                handler.handle(rk: rk, err: err, partitions: partitions)
            }
            rd_kafka_conf_set_offset_commit_cb(conf) { _, err, _, opaque in
                guard let opaque else { return }
                Unmanaged<RebalanceHandler>.fromOpaque(opaque).takeUnretainedValue().committed(err: err)
            }
        }
        let handle: OpaquePointer
        do {
            handle = try KafkaSettings.makeHandle(RD_KAFKA_CONSUMER, conf: conf)
        } catch {
            context?.release()
            throw error
        }
        // Serve every event from the consumer queue (INTRODUCTION.md, "Consumer groups").
        rd_kafka_poll_set_consumer(handle)
        let aborts = AssignorChoice.closeBeforeAssignmentAborts(strategy: settings["partition.assignment.strategy"], version: rd_kafka_version())
        return KafkaConsumer(handle: handle, rebalanceContext: context, abortsIfClosedUnassigned: aborts)
    }

    private let rebalanceContext: Unmanaged<RebalanceHandler>?

    private init(handle: OpaquePointer, rebalanceContext: Unmanaged<RebalanceHandler>?, abortsIfClosedUnassigned: Bool) {
        self.handle = handle
        self.rebalanceContext = rebalanceContext
        self.abortsIfClosedUnassigned = abortsIfClosedUnassigned
    }

    /// Detaches and returns the fetch queue of an assigned partition.
    public func partitionQueue(topic: String, partition: Int32, batchSize: Int = 256) -> PartitionQueue? {
        gate.use(whileClosing: true) { PartitionQueue(consumer: handle, topic: topic, partition: partition, batchSize: batchSize) } ?? nil
    }

    /// The consumer's lifecycle state.
    var state: HandleGate.State { gate.current }

    /// Waits up to `timeoutMs` on the consumer queue; returns a message that
    /// reached it (with per-partition queues detached this is rare) or nil.
    /// Rebalance callbacks run inside this call.
    /// Nil once `close` began.
    public func pollRaw(timeoutMs: Int) -> KafkaRawMessage? {
        // The gate hands back the pointer (its `use` is generic over copyable results only).
        guard let polled = gate.use({ rd_kafka_consumer_poll(handle, Int32(timeoutMs)) }), let pointer = polled else { return nil }
        return KafkaRawMessage(pointer: pointer)
    }

    /// Joins the group and subscribes to `topics`.
    public func subscribe(_ topics: [String]) throws {
        let list = Self.makeList(topics.map { PartitionOffset(topic: $0, partition: RD_KAFKA_PARTITION_UA, offset: 0) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        subscribed.withLock { $0 = true }
        guard let err = gate.use({ rd_kafka_subscribe(handle, list) }) else { throw KafkaError.consumerClosed("subscribe") }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "subscribe") }
    }

    /// Reads the given partitions from the given offsets, outside the group protocol.
    public func assign(_ partitions: [PartitionOffset]) throws {
        let list = Self.makeList(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        guard let err = gate.use({ rd_kafka_assign(handle, list) }) else { throw KafkaError.consumerClosed("assign") }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "assign") }
    }

    /// Waits up to `timeoutMs` for the next message. Returns nil on timeout;
    /// throws a consumer error event (e.g. broker down) as `KafkaError`.
    public func poll(timeoutMs: Int) throws -> ConsumedMessage? {
        guard let polled = gate.use({ rd_kafka_consumer_poll(handle, Int32(timeoutMs)) }) else { throw KafkaError.consumerClosed("poll") }
        guard let raw = polled else { return nil }
        defer { rd_kafka_message_destroy(raw) }
        let message = raw.pointee
        if message.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            if message.err == RD_KAFKA_RESP_ERR__PARTITION_EOF { return nil }
            throw KafkaError(message.err)
        }
        return ConsumedMessage(raw)
    }

    /// Commits `offsets` (each the offset of the next message to read).
    public func commit(_ offsets: [PartitionOffset], async: Bool) throws {
        guard !offsets.isEmpty else { return }
        let list = Self.makeList(offsets)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        // While closing too: the last revoke (inside rd_kafka_consumer_close) commits.
        guard let err = gate.use(whileClosing: true, { rd_kafka_commit(handle, list, async ? 1 : 0) }) else { throw KafkaError.consumerClosed("commit") }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "commit") }
    }

    /// Moves the fetch position of an assigned partition to `position.offset`
    /// and purges what was fetched ahead; waits up to `timeoutMs` so that no
    /// message fetched before the seek is delivered after it (blocking).
    public func seek(_ position: PartitionOffset, timeoutMs: Int) throws {
        let list = Self.makeList([position])
        defer { rd_kafka_topic_partition_list_destroy(list) }
        guard let outcome = gate.use({ rd_kafka_seek_partitions(handle, list, Int32(timeoutMs)) }) else {
            throw KafkaError.consumerClosed("seek \(position.topic)[\(position.partition)]")
        }
        if let error = outcome {
            defer { rd_kafka_error_destroy(error) }
            throw KafkaError(rd_kafka_error_code(error), context: "seek \(position.topic)[\(position.partition)] to \(position.offset)")
        }
        let err = list.pointee.elems[0].err
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "seek \(position.topic)[\(position.partition)] to \(position.offset)") }
    }

    /// The group's committed offsets for `partitions` (blocking).
    public func committed(_ partitions: [PartitionOffset], timeoutMs: Int) throws -> [PartitionOffset] {
        let list = Self.makeList(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        guard let err = gate.use(whileClosing: true, { rd_kafka_committed(handle, list, Int32(timeoutMs)) }) else { throw KafkaError.consumerClosed("committed") }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "committed") }
        return Self.readList(list)
    }

    /// The partitions librdkafka fetches for this consumer now (its
    /// current assignment); nil once `close` began or if it cannot tell.
    func assignment() -> [PartitionOffset]? {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard gate.use({ rd_kafka_assignment(handle, &list) }) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return nil }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        return Self.readList(list)
    }

    /// Low and high watermark of a partition as last seen by this client (no request).
    public func watermarks(topic: String, partition: Int32) -> (low: Int64, high: Int64)? {
        var low: Int64 = -1
        var high: Int64 = -1
        let err = gate.use(whileClosing: true) { rd_kafka_get_watermark_offsets(handle, topic, partition, &low, &high) }
        return err == RD_KAFKA_RESP_ERR_NO_ERROR ? (low, high) : nil
    }

    /// Leaves the group (committing nothing further) and destroys the handle.
    /// Blocking; safe to call twice.
    ///
    /// On a librdkafka that aborts when a cooperative-sticky consumer is
    /// destroyed before its first assignment (issue #4312), such a consumer
    /// leaves its group but keeps its handle (and rebalance handler) until the
    /// process exits: it held no partition, so nothing is left to commit.
    /// Calls made after `close` began fail (`KafkaError.isClosed`), but
    /// commits, committed offsets and watermarks while it runs (the last
    /// revoke callback commits); the handle is destroyed once no call is
    /// inside.
    public func close() {
        guard gate.beginClosing() else { return }
        let wasSubscribed = subscribed.withLock { $0 }
        Self.closeAndDestroy(handle, rebalanceContext, gate: gate,
                             keepHandle: abortsIfClosedUnassigned && wasSubscribed)
    }

    /// Leaves the group (running the last rebalance callback) and destroys
    /// the handle once no call is inside. `keepHandle`: keep it if it never
    /// had an assignment (librdkafka issue #4312).
    private static func closeAndDestroy(_ handle: OpaquePointer, _ context: Unmanaged<RebalanceHandler>?, gate: HandleGate, keepHandle: Bool) {
        if let observe = closeObserver.withLock({ $0 }) { observe(UInt(bitPattern: handle), currentThreadName()) }
        _ = rd_kafka_consumer_close(handle)
        gate.finishClosing()
        // After the close: no assignment is taken once it has begun.
        if keepHandle && !(context?.takeUnretainedValue().hasBeenAssigned ?? false) {
            KafkaLog.logger.notice("consumer closed before its first assignment; its handle is kept until the process exits (librdkafka \(AssignorChoice.versionName(rd_kafka_version())) would abort destroying it: issue #4312)")
            return
        }
        rd_kafka_destroy(handle)
        context?.release()
    }

    /// Test seam: told which handle (`handleID`) is being closed, and the
    /// name of the thread the blocking `rd_kafka_consumer_close` (and the
    /// rebalance callback inside it) runs on. Nil in production.
    static let closeObserver = LockedValue<(@Sendable (UInt, String) -> Void)?>(nil)

    /// The handle's address, as `closeObserver` names it.
    var handleID: UInt { UInt(bitPattern: handle) }

    /// The calling thread's name as the kernel knows it (what
    /// `DedicatedThread` sets, and `top -H` shows).
    static func currentThreadName() -> String {
        let comm = try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)
        return comm?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
    }

    /// Where consumers dropped without `close` are closed: the close blocks
    /// and runs the rebalance callback, which must not happen on whatever
    /// thread let go of the last reference (a worker, the concurrency pool).
    static let orphanCloser = DedicatedThread(name: "consumer-close")

    deinit {
        guard gate.beginClosing() else { return }
        KafkaLog.logger.warning("a consumer was dropped without close(); closing it on thread consumer-close")
        let handle = SendableHandle(raw: handle), context = rebalanceContext.map(SendableRebalanceContext.init)
        let gate = gate, keep = abortsIfClosedUnassigned && subscribed.withLock { $0 }
        Self.orphanCloser.submit {
            Self.closeAndDestroy(handle.raw, context?.value, gate: gate, keepHandle: keep)
        }
    }

    static func makeList(_ items: [PartitionOffset]) -> UnsafeMutablePointer<rd_kafka_topic_partition_list_t> {
        let list = rd_kafka_topic_partition_list_new(Int32(max(items.count, 1)))!
        for item in items {
            let entry = rd_kafka_topic_partition_list_add(list, item.topic, item.partition)!
            entry.pointee.offset = item.offset
        }
        return list
    }

    static func readList(_ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> [PartitionOffset] {
        (0..<Int(list.pointee.cnt)).map { index in
            let entry = list.pointee.elems[index]
            return PartitionOffset(topic: String(cString: entry.topic), partition: entry.partition, offset: entry.offset)
        }
    }
}

extension ConsumedMessage {
    /// Copies a librdkafka message (which the caller still owns).
    init(_ raw: UnsafeMutablePointer<rd_kafka_message_t>) {
        let message = raw.pointee
        let topic = message.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
        let value = message.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: message.len)) } ?? []
        let key = message.key.map { Array(UnsafeRawBufferPointer(start: $0, count: message.key_len)) }
        var headers: [KafkaHeader] = []
        var hdrs: OpaquePointer?
        if rd_kafka_message_headers(raw, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs {
            var index = 0
            var name: UnsafePointer<CChar>?
            var valuePtr: UnsafeRawPointer?
            var size = 0
            while rd_kafka_header_get_all(hdrs, index, &name, &valuePtr, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                let bytes = valuePtr.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }
                headers.append(KafkaHeader(name: name.map { String(cString: $0) } ?? "", bytes: bytes))
                index += 1
            }
        }
        var tsType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(raw, &tsType)
        self.init(
            topic: topic, partition: message.partition, offset: message.offset,
            key: key, value: value, headers: headers, timestampMs: timestamp)
    }
}

/// A consumer's retained rebalance handler, handed to `orphanCloser`.
private struct SendableRebalanceContext: @unchecked Sendable {
    // Safe because the handler is Sendable and this retain is released exactly once, by that close.
    let value: Unmanaged<RebalanceHandler>
}
