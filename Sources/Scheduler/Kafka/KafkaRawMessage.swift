import CRdKafka
import Synchronization

/// A librdkafka message, read in place (no copy per field) through a view
/// that owns nothing: it is valid while its owner (a `KafkaRawMessage` or a
/// `KafkaMessageBatch`) has neither destroyed nor given the message away.
public struct KafkaMessageView: @unchecked Sendable {
    // Safe because a view is used on the thread of its owner's holder.
    let pointer: UnsafeMutablePointer<rd_kafka_message_t>

    /// Reads a message someone else owns (the benchmark's own buffers).
    @_spi(Benchmark) public init(pointer: UnsafeMutablePointer<rd_kafka_message_t>) {
        self.pointer = pointer
    }

    /// Topic name.
    public var topic: String { pointer.pointee.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? "" }
    /// Topic name as librdkafka's own C string (no copy; valid as long as the view).
    public var topicName: UnsafePointer<CChar> {
        pointer.pointee.rkt.map { rd_kafka_topic_name($0) } ?? KafkaMessageView.noTopic
    }
    // An immutable one-byte C string, never freed: safe to share.
    nonisolated(unsafe) private static let noTopic: UnsafePointer<CChar> = {
        let empty = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
        empty.initialize(to: 0)
        return UnsafePointer(empty)
    }()

    /// Partition id.
    public var partition: Int32 { pointer.pointee.partition }
    /// Offset within the partition.
    public var offset: Int64 { pointer.pointee.offset }
    /// The consumer error this message carries, if any (e.g. partition EOF).
    public var error: KafkaError? {
        pointer.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(pointer.pointee.err)
    }

    /// Timestamp in milliseconds since the epoch, or -1.
    public var timestampMs: Int64 {
        var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        return rd_kafka_message_timestamp(pointer, &type)
    }

    /// The payload bytes, valid as long as the view.
    public var payload: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: pointer.pointee.payload, count: pointer.pointee.payload == nil ? 0 : pointer.pointee.len)
    }

    /// The key bytes (nil: no key), valid as long as the view.
    public var key: UnsafeRawBufferPointer? {
        guard let key = pointer.pointee.key else { return nil }
        return UnsafeRawBufferPointer(start: key, count: pointer.pointee.key_len)
    }

    /// Calls `body` for each header in order, with its name and value bytes.
    public func forEachHeader(_ body: (UnsafePointer<CChar>, UnsafeRawBufferPointer) -> Void) {
        var headers: OpaquePointer?
        guard rd_kafka_message_headers(pointer, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR, let headers else { return }
        var index = 0
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(headers, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            if let name { body(name, UnsafeRawBufferPointer(start: value, count: value == nil ? 0 : size)) }
            index += 1
        }
    }
}

/// One librdkafka message the holder owns: destroyed exactly once, when the
/// value ends (`destroy()` or going out of scope), unless handed on whole
/// (`KafkaMessageBatch(_:)`). Non-copyable, so the compiler rules out a
/// second destroy and any use after it.
///
/// Threading rule: a message is handed from one thread to another only as a
/// whole (through a lock or a queue), never used by two threads at once,
/// hence `@unchecked Sendable`.
public struct KafkaRawMessage: ~Copyable, @unchecked Sendable {
    /// Read access, valid while this value lives.
    public let view: KafkaMessageView

    /// Wraps a message librdkafka handed out; the wrapper then owns it.
    init(pointer: UnsafeMutablePointer<rd_kafka_message_t>) {
        view = KafkaMessageView(pointer: pointer)
    }

    /// The consumer error this message carries, if any (e.g. partition EOF).
    public var error: KafkaError? { view.error }

    /// Returns the message's memory to librdkafka now.
    public consuming func destroy() {}

    /// Gives up ownership without destroying: the caller owns the message.
    consuming func release() -> KafkaMessageView {
        let view = view
        discard self
        return view
    }

    deinit {
        rd_kafka_message_destroy(view.pointer)
    }
}

/// Messages of one partition, in order, owned together: the front is taken
/// off as each is finished (`removeFirst`), and what is left is destroyed
/// when the batch ends or handed on whole (`release`, for a feed's backlog).
/// Swift 6.3 has no array of non-copyable values, so this one type holds
/// the messages as views and is itself non-copyable: ownership of the
/// pointers is in this type and nowhere else on the lease path.
struct KafkaMessageBatch: ~Copyable, @unchecked Sendable {
    // Safe because, as for KafkaRawMessage, a batch is moved whole between threads.
    private var messages: [KafkaMessageView]
    private var start = 0

    /// Takes ownership of `messages`.
    init(adopting messages: [KafkaMessageView] = []) {
        self.messages = messages
    }

    /// A batch of one.
    init(_ message: consuming KafkaRawMessage) {
        self.messages = [message.release()]
    }

    /// The messages left, oldest first; valid while they are in the batch.
    var remaining: ArraySlice<KafkaMessageView> { messages[start...] }
    var first: KafkaMessageView? { start < messages.count ? messages[start] : nil }
    var last: KafkaMessageView? { start < messages.count ? messages[messages.count - 1] : nil }
    var count: Int { messages.count - start }
    var isEmpty: Bool { start == messages.count }

    /// Destroys the first `count` messages (finished or dropped).
    mutating func removeFirst(_ count: Int = 1) {
        precondition(count <= self.count, "removing more messages than the batch holds")
        for message in messages[start..<start + count] { rd_kafka_message_destroy(message.pointer) }
        start += count
    }

    /// Destroys the messages left now.
    consuming func destroy() {}

    /// Gives up ownership of the messages left: the caller owns them.
    consuming func release() -> ArraySlice<KafkaMessageView> {
        defer { start = messages.count }  // the deinit then destroys nothing
        return messages[start...]
    }

    deinit {
        for message in messages[start...] { rd_kafka_message_destroy(message.pointer) }
    }
}

/// One partition's fetch queue, detached from the consumer queue so that
/// whichever worker holds the partition reads it directly.
///
/// librdkafka forwards partition queues to the consumer queue by default;
/// `rd_kafka_queue_forward(queue, NULL)` removes that (rdkafka.h,
/// rd_kafka_queue_get_partition; librdkafka issue 2387).
public final class PartitionQueue: @unchecked Sendable {
    // Safe because librdkafka queues are thread-safe; only the lease holder
    // consumes from it, and it is destroyed once, after the last lease ended.
    private let queue: OpaquePointer
    private var buffer: [UnsafeMutablePointer<rd_kafka_message_t>?]

    init?(consumer: OpaquePointer, topic: String, partition: Int32, batchSize: Int) {
        guard let queue = rd_kafka_queue_get_partition(consumer, topic, partition) else { return nil }
        rd_kafka_queue_forward(queue, nil)
        self.queue = queue
        self.buffer = Array(repeating: nil, count: batchSize)
    }

    /// Returns the messages waiting, at most the batch size; when none is
    /// waiting, waits up to `timeoutMs` for the first one.
    /// Call only from the thread of the lease holder.
    ///
    /// `rd_kafka_consume_batch_queue` waits until the batch is *full* or the
    /// timeout passes, so a worker asking for 256 messages while 100 are
    /// there would sit idle until the timeout: take what is there without
    /// waiting, and wait only for a single message when the queue is empty.
    func consumeBatch(timeoutMs: Int) -> KafkaMessageBatch {
        guard !destroyed.load(ordering: .acquiring) else { return KafkaMessageBatch() }
        let count = buffer.withUnsafeMutableBufferPointer { slots -> Int in
            let ready = rd_kafka_consume_batch_queue(queue, 0, slots.baseAddress, slots.count)
            guard ready == 0, timeoutMs > 0 else { return max(0, ready) }
            guard rd_kafka_consume_batch_queue(queue, Int32(timeoutMs), slots.baseAddress, 1) == 1 else { return 0 }
            let more = rd_kafka_consume_batch_queue(queue, 0, slots.baseAddress! + 1, slots.count - 1)
            return 1 + max(0, more)
        }
        guard count > 0 else { return KafkaMessageBatch() }
        return KafkaMessageBatch(adopting: (0..<count).compactMap { buffer[$0].map(KafkaMessageView.init(pointer:)) })
    }

    /// Messages fetched and waiting in this queue.
    public var length: Int { destroyed.load(ordering: .acquiring) ? 0 : rd_kafka_queue_length(queue) }

    // Set once by `destroy`, read by `length` from other threads (views):
    // after the destroy they get 0 instead of a freed queue. `destroy` runs
    // only once no lease reads the queue, so no holder races it.
    private let destroyed = Atomic<Bool>(false)

    /// Destroys the queue now (before the consumer is closed, as librdkafka
    /// requires); later calls and the deinit do nothing. Only once no lease
    /// reads it any more.
    public func destroy() {
        if !destroyed.exchange(true, ordering: .acquiringAndReleasing) { rd_kafka_queue_destroy(queue) }
    }

    deinit {
        destroy()
    }
}
