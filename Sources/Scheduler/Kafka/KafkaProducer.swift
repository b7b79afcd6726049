import CRdKafka
import Foundation
import Logging
import Synchronization

/// An idempotent Kafka producer whose delivery reports resume async callers.
///
/// `enable.idempotence=true` implies `acks=all` (librdkafka CONFIGURATION.md),
/// so `send` returns only once every in-sync replica has the message, and a
/// retried send can neither duplicate nor reorder it.
public final class KafkaProducer: @unchecked Sendable {
    // Safe because the rd_kafka_t handle is thread-safe (librdkafka
    // INTRODUCTION.md, "Threads and callbacks"); delivery callbacks run on the
    // poll thread or inside `flush`, and only touch `router` (Mutex-guarded).
    // Every use of `handle` goes through `gate`: none after `close` began
    // (but the flush of `close` itself), none once it is destroyed.
    private let handle: OpaquePointer
    private let router: DeliveryRouter
    private let routerRef: Unmanaged<DeliveryRouter>
    private let poller: KafkaPollLoop
    private let blocking = DedicatedThread(name: "kafka-producer-blocking")
    private let gate = HandleGate()
    /// The bootstrap servers this producer talks to.
    public let bootstrapServers: String

    // A valid pointer for an empty header value; never written nor freed.
    nonisolated(unsafe) static let emptyValue = UnsafeRawPointer(UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1))

    /// Creates a producer.
    /// - Parameters:
    ///   - bootstrapServers: `host:port[,host:port]`.
    ///   - deliveryTimeoutMs: `message.timeout.ms`: how long librdkafka retries a message before failing it.
    ///   - properties: further librdkafka properties; they override the defaults set here.
    public static func make(
        bootstrapServers: String,
        deliveryTimeoutMs: Int,
        properties: [String: String] = [:]
    ) throws -> KafkaProducer {
        var settings: [String: String] = [
            "bootstrap.servers": bootstrapServers,
            "enable.idempotence": "true",
            "acks": "all",
            "message.timeout.ms": String(deliveryTimeoutMs),
            // A caller waiting for its acknowledgement waits for the linger
            // too: 5 ms held 64 concurrent API posts to ~5k/s. 0 is worse here:
            // with librdkafka 2.0.2 the producer's broker thread then spins in
            // poll() while its in-flight requests are out (a third of the
            // daemon's CPU in `perf` under `make loadtest`). 2 ms lets it sleep
            // and batch: same rate as 1 ms under 64 concurrent posts, p99
            // ~10 ms instead of ~45 ms. `[kafka.properties] "linger.ms"` overrides.
            "linger.ms": "2",
            // A message without a key goes to a partition of its own, drawn
            // at random. By default librdkafka keeps every keyless message
            // on one "sticky" partition for 2 x linger.ms, which under
            // `make loadtest` halved keyless posts (7.5k/s against 15k/s
            // with a key, p99 ~50 ms against ~10 ms): all of them queue on
            // one partition (whose requests the idempotent producer keeps
            // at most 5 in flight). Keyed messages go by the hash of their
            // key as before, so their order is kept (docs/performance-notes.md).
            "sticky.partitioning.linger.ms": "0",
            // Small produce requests must not wait for Nagle's algorithm.
            "socket.nagle.disable": "true",
            "client.id": "task-scheduler",
        ]
        settings.merge(properties) { _, new in new }
        let conf = try KafkaSettings.makeConf(settings)
        let router = DeliveryRouter()
        let ref = Unmanaged.passRetained(router)
        rd_kafka_conf_set_opaque(conf, ref.toOpaque())
        rd_kafka_conf_set_dr_msg_cb(conf) { _, message, opaque in
            guard let message, let opaque else { return }
            let router = Unmanaged<DeliveryRouter>.fromOpaque(opaque).takeUnretainedValue()
            router.deliver(message.pointee)
        }
        KafkaSettings.routeLogs(conf)
        let handle: OpaquePointer
        do {
            handle = try KafkaSettings.makeHandle(RD_KAFKA_PRODUCER, conf: conf)
        } catch {
            ref.release()
            throw error
        }
        return KafkaProducer(handle: handle, router: router, routerRef: ref, bootstrapServers: bootstrapServers)
    }

    private init(handle: OpaquePointer, router: DeliveryRouter, routerRef: Unmanaged<DeliveryRouter>, bootstrapServers: String) {
        self.handle = handle
        self.router = router
        self.routerRef = routerRef
        self.bootstrapServers = bootstrapServers
        // rd_kafka_poll blocks up to its timeout waiting for events: no busy loop.
        let shared = SendableHandle(raw: handle)
        self.poller = KafkaPollLoop(name: "kafka-producer-poll") {
            rd_kafka_poll(shared.raw, 100)
        }
    }

    /// Publishes `message` and returns once the broker has acknowledged it.
    /// Throws the `KafkaError` from the delivery report, e.g. a timeout
    /// (`isTimeout`) when no broker could be reached within `message.timeout.ms`.
    public func send(_ message: OutgoingMessage) async throws -> DeliveryReport {
        try await enqueue(message).report()
    }

    /// Hands `message` to librdkafka now and returns a handle to await its
    /// delivery report. Messages enqueued one after another keep their order
    /// within a partition.
    /// After `close` began the delivery fails at once (`isClosed`).
    public func enqueue(_ message: OutgoingMessage) -> PendingDelivery {
        let (id, delivery) = router.register()
        guard let result = gate.use({ enqueue(message, opaque: UnsafeMutableRawPointer(bitPattern: id)) }) else {
            router.complete(id, .failure(.producerClosed(topic: message.topic)))
            return delivery
        }
        if result != RD_KAFKA_RESP_ERR_NO_ERROR {
            router.complete(id, .failure(KafkaError(result, context: "produce to '\(message.topic)'")))
        }
        return delivery
    }

    /// Hands `message` to librdkafka without a waiter: its delivery report
    /// goes to `sink` with `token` (on the poll thread). Returns the error if
    /// librdkafka refused it at once (e.g. its queue is full); the sink then
    /// hears nothing of it. Order within a partition is enqueue order.
    /// After `close` began: an error (`isClosed`), the sink hears nothing.
    func produce(_ message: OutgoingMessage, sink: DeliverySink, token: Int64) -> KafkaError? {
        let id = router.register(sink: sink, token: token)
        guard let result = gate.use({ enqueue(message, opaque: UnsafeMutableRawPointer(bitPattern: id)) }) else {
            router.forget(id)
            return .producerClosed(topic: message.topic)
        }
        guard result != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        router.forget(id)
        return KafkaError(result, context: "produce to '\(message.topic)'")
    }

    /// After `produce` was refused for a full queue: blocks until a delivery
    /// report frees a place, `stop` is requested, or `timeout` passes.
    func waitForRoom(timeout: Duration = .milliseconds(100), stop: StopSignal?) {
        router.room.wait(timeout: timeout, stop: stop)
    }

    private func enqueue(_ message: OutgoingMessage, opaque: UnsafeMutableRawPointer?) -> rd_kafka_resp_err_t {
        let headers: OpaquePointer? = message.headers.isEmpty ? nil : rd_kafka_headers_new(message.headers.count)
        for header in message.headers {
            // A nil value is Kafka's null header value (NULL, 0), not "".
            if let bytes = header.value {
                // An empty value needs a non-NULL pointer, or it would become null.
                _ = bytes.withUnsafeBytes { rd_kafka_header_add(headers, header.name, -1, $0.baseAddress ?? KafkaProducer.emptyValue, $0.count) }
            } else {
                _ = rd_kafka_header_add(headers, header.name, -1, nil, 0)
            }
        }
        let partition = message.partition ?? RD_KAFKA_PARTITION_UA
        let result = withOptionalBytes(message.isTombstone ? nil : message.value) { value in
            withOptionalBytes(message.key) { key in
                crdkafka_produce(
                    handle, message.topic, partition,
                    value?.baseAddress, value?.count ?? 0, key?.baseAddress, key?.count ?? 0,
                    headers, opaque)
            }
        }
        // On failure librdkafka did not take ownership of the headers.
        if result != RD_KAFKA_RESP_ERR_NO_ERROR, let headers { rd_kafka_headers_destroy(headers) }
        return result
    }

    /// The producer's lifecycle state.
    var state: HandleGate.State { gate.current }

    /// Number of messages librdkafka holds that the broker has not
    /// acknowledged yet (0 once closed).
    public var outstandingCount: Int { gate.use(whileClosing: true) { Int(rd_kafka_outq_len(handle)) } ?? 0 }

    /// Waits up to `timeoutMs` for every outstanding message to be delivered
    /// (or to fail), on a dedicated thread. Returns true when nothing is left
    /// (false once closed).
    @discardableResult
    public func flush(timeoutMs: Int) async -> Bool {
        let shared = SendableHandle(raw: handle)
        let flushed = try? await blocking.run { [gate] in
            gate.use(whileClosing: true) { rd_kafka_flush(shared.raw, Int32(timeoutMs)) == RD_KAFKA_RESP_ERR_NO_ERROR } ?? false
        }
        return flushed ?? false
    }

    /// Reads cluster metadata for one topic; see `TopicMetadata`. Throws
    /// (`isClosed`) once `close` began.
    public func metadata(topic: String, timeoutMs: Int = 5000) async throws -> TopicMetadata {
        let shared = SendableHandle(raw: handle)
        let closed = KafkaError(code: RD_KAFKA_RESP_ERR__STATE.rawValue, message: "metadata of '\(topic)': the producer is closed")
        guard gate.current == .running else { throw closed }
        return try await blocking.run { [gate] in
            guard let metadata = try gate.use({ try KafkaMetadata.fetch(handle: shared.raw, topic: topic, timeoutMs: timeoutMs) }) else {
                throw closed
            }
            return metadata
        }
    }

    /// Asks the cluster for `topic`'s metadata in the background, so the
    /// first message to a topic this producer has not used yet is
    /// partitioned as soon as the answer comes (milliseconds) instead of at
    /// librdkafka's next scan of unknown topics (every second: the first
    /// post to each topic took 0.8 to 1.0 s). Runs on the blocking thread,
    /// which also destroys the handle, and not once closing has begun.
    func learnTopicSoon(_ topic: String) {
        let shared = SendableHandle(raw: handle)
        blocking.submit { [gate] in
            // Best effort: without an answer librdkafka's own scan finds the topic.
            _ = gate.use { try? KafkaMetadata.fetch(handle: shared.raw, topic: topic, timeoutMs: 1000) }
        }
    }

    /// Refuses new messages (`enqueue` and `produce` fail from now on),
    /// flushes for up to `timeoutMs`, waits for calls still inside the
    /// handle, stops the poll thread and destroys the handle on the blocking
    /// thread. Pending sends that were not delivered fail. Safe to call twice.
    public func close(timeoutMs: Int) async {
        guard gate.beginClosing() else { return }
        await flush(timeoutMs: timeoutMs)
        let shared = SendableHandle(raw: handle)
        _ = try? await blocking.run { [poller, gate] in  // stopped only below
            gate.finishClosing()
            poller.stop()
            rd_kafka_destroy(shared.raw)
        }
        blocking.stop()
        router.failAll(KafkaError(code: RD_KAFKA_RESP_ERR__DESTROY.rawValue, message: "producer closed before delivery"))
    }

    deinit {
        // Not closed: nothing else holds this producer, so no call is inside.
        if gate.beginClosing() {
            gate.finishClosing()
            poller.stop()
            rd_kafka_destroy(handle)
            blocking.stop()
        }
        routerRef.release()
    }
}

private func withOptionalBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
    guard let bytes else { return body(nil) }
    return bytes.withUnsafeBytes { body($0) }
}

/// The outcome of one produced message, to be awaited.
public final class PendingDelivery: Sendable {
    /// The outcome once known, and an async caller waiting for it (resumed
    /// outside the lock, exactly once).
    private struct Slot: Sendable {
        var outcome: Result<DeliveryReport, KafkaError>?
        var waiter: CheckedContinuation<DeliveryReport, Error>?
    }
    private let slot = WatchedValue(Slot())

    func complete(_ result: Result<DeliveryReport, KafkaError>) {
        let waiting = slot.update { slot -> CheckedContinuation<DeliveryReport, Error>? in
            guard slot.outcome == nil else { return nil }
            slot.outcome = result
            defer { slot.waiter = nil }
            return slot.waiter
        }
        waiting?.resume(with: result.mapError { $0 as Error })
    }

    /// Waits for the broker's acknowledgement; throws the delivery error.
    public func report() async throws -> DeliveryReport {
        try await withCheckedThrowingContinuation { continuation in
            let known = slot.update { slot -> Result<DeliveryReport, KafkaError>? in
                if slot.outcome == nil { slot.waiter = continuation }
                return slot.outcome
            }
            if let known { continuation.resume(with: known.mapError { $0 as Error }) }
        }
    }

    /// Blocks the calling thread until the report arrives. Only for dedicated
    /// threads (workers), never Swift's concurrency pool.
    public func wait() -> Result<DeliveryReport, KafkaError> {
        _ = slot.waitBlocking(until: .distantFuture) { $0.outcome != nil }
        return slot.read { $0.outcome! }
    }
}

/// Receives the delivery reports of messages produced with `produce(_:sink:token:)`.
protocol DeliverySink: AnyObject, Sendable {
    /// The message enqueued with `token` was acknowledged (`error` nil) or failed.
    func delivered(token: Int64, error: KafkaError?)
}

/// Matches delivery reports to the messages they belong to.
final class DeliveryRouter: Sendable {
    private enum Target: Sendable {
        case waiter(PendingDelivery)
        case sink(DeliverySink, Int64)
    }
    /// The messages awaiting their report, by the id passed to librdkafka.
    private struct Registry: Sendable {
        var waiting: [UInt: Target] = [:]
        var nextID: UInt = 1
    }
    private let registry = Mutex(Registry())
    /// Woken by every report: a sender refused for a full queue waits on it.
    let room = QueueRoom()

    func register() -> (UInt, PendingDelivery) {
        let delivery = PendingDelivery()
        return (add(.waiter(delivery)), delivery)
    }

    func register(sink: DeliverySink, token: Int64) -> UInt {
        add(.sink(sink, token))
    }

    private func add(_ target: Target) -> UInt {
        registry.withLock { registry in
            let id = registry.nextID
            registry.nextID += 1
            registry.waiting[id] = target
            return id
        }
    }

    private func take(_ id: UInt) -> Target? {
        registry.withLock { $0.waiting.removeValue(forKey: id) }
    }

    /// Drops a registration whose message librdkafka refused.
    func forget(_ id: UInt) { _ = take(id) }

    func complete(_ id: UInt, _ result: Result<DeliveryReport, KafkaError>) {
        switch take(id) {
        case .waiter(let delivery): delivery.complete(result)
        case .sink(let sink, let token): sink.delivered(token: token, error: result.failure)
        case nil: break
        }
    }

    func failAll(_ error: KafkaError) {
        let all = registry.withLock { registry in
            defer { registry.waiting.removeAll() }
            return registry.waiting
        }
        for target in all.values {
            switch target {
            case .waiter(let delivery): delivery.complete(.failure(error))
            case .sink(let sink, let token): sink.delivered(token: token, error: error)
            }
        }
    }

    func deliver(_ message: rd_kafka_message_t) {
        defer { room.noteFreed() }
        let id = UInt(bitPattern: message._private)
        let error = message.err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(message.err)
        switch take(id) {
        case .sink(let sink, let token):
            // No report to build: the sink needs only the outcome.
            sink.delivered(token: token, error: error)
        case .waiter(let delivery):
            if let error {
                delivery.complete(.failure(error))
            } else {
                let topic = message.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
                delivery.complete(.success(DeliveryReport(topic: topic, partition: message.partition, offset: message.offset)))
            }
        case nil: break
        }
    }
}

extension Result {
    /// The error of a failure, nil for a success.
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
