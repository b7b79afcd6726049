import CoreMetrics
import Logging

/// Why a task was not published.
public enum PublishError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The task itself is wrong (topic name, size); the API answers 400.
    case invalid(String)
    /// No broker acknowledged it within `producer.timeout_ms`; the API answers 503.
    case timedOut
    /// librdkafka's local queue is full; the API answers 503 so the client retries later.
    case backpressure(String)
    /// Any other librdkafka error.
    case kafka(KafkaError)

    public var description: String {
        switch self {
        case .invalid(let reason): reason
        case .timedOut: "Producer timed out."
        case .backpressure(let reason): reason
        case .kafka(let error): error.description
        }
    }
}

/// Publishes tasks through the idempotent producer and remembers the ones
/// still waiting for the broker's acknowledgement.
public final class TaskPublisher: Sendable {
    private let producer: KafkaProducer
    private let pending = PendingTasks()
    private let maxMessageBytes: Int
    private let logger: Logger
    /// Creates topics before first use (the embedded broker, so they get
    /// `[kafka] partitions`); nil for a real cluster.
    private let topicCreator: (@Sendable (String) throws -> Void)?
    private let knownTopics = LockedValue<Set<String>>([])
    /// `[api] topics` and `max_topics`: which topics, and how many, `knownTopics` may hold.
    let policy: TopicPolicy
    private let topicThread = DedicatedThread(name: "topic-create")
    let metrics: SchedulerMetrics
    /// `scheduler_tasks_published_total` per topic: looked up by topic alone
    /// (building the metrics cache's label key per delivery showed in the profile).
    private let publishedCounters = LockedValue<[String: CoreMetrics.Counter]>([:])

    /// A publisher over `producer`; `topicCreator` creates topics that do not exist yet (embedded broker).
    @_spi(Benchmark) public init(producer: KafkaProducer, maxMessageBytes: Int, logger: Logger, metrics: SchedulerMetrics,
         topicCreator: (@Sendable (String) throws -> Void)?, policy: TopicPolicy = .any) {
        self.policy = policy
        self.metrics = metrics
        self.producer = producer
        self.maxMessageBytes = maxMessageBytes
        self.logger = logger
        self.topicCreator = topicCreator
    }

    /// Tasks not yet acknowledged by the broker, oldest first.
    public var pendingTasks: [TaskSpec] { pending.snapshot }

    /// How many tasks wait for the broker's acknowledgement (without copying them).
    public var pendingCount: Int { pending.count }

    /// Checks a task without publishing it; returns what is wrong, or nil.
    public func problem(with task: TaskSpec) -> String? {
        if let problem = TopicName.problem(task.topic) ?? policyProblem(task.topic) { return problem }
        let size = task.message.utf8.count + (task.key?.utf8.count ?? 0)
            + (task.headers ?? [:]).reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
        if size > maxMessageBytes {
            return "message is \(size) bytes (with key and headers); the limit is \(maxMessageBytes) (producer.max_message_bytes)"
        }
        return nil
    }

    /// Publishes `task` and returns once the broker acknowledged it.
    public func publish(_ task: TaskSpec) async throws(PublishError) -> DeliveryReport {
        try await publishAll([task])[0].get()
    }

    /// Publishes `tasks` in order (tasks of one key keep this order in their
    /// partition) and waits for every acknowledgement; one result per task.
    public func publishAll(_ tasks: [TaskSpec]) async -> [Result<DeliveryReport, PublishError>] {
        var waits: [(ticket: UInt64?, task: TaskSpec, delivery: Result<PendingDelivery, PublishError>)] = []
        for task in tasks {
            if let problem = problem(with: task) {
                waits.append((nil, task, .failure(.invalid(problem))))
                continue
            }
            do {
                try await prepareTopicOffPool(task.topic)
            } catch {
                waits.append((nil, task, .failure(.kafka(error as? KafkaError ?? KafkaError(code: -1, message: "\(error)")))))
                continue
            }
            waits.append((pending.add(task), task, .success(producer.enqueue(task.outgoing))))
        }
        var results: [Result<DeliveryReport, PublishError>] = []
        for wait in waits {
            switch wait.delivery {
            case .failure(let error):
                results.append(.failure(error))
            case .success(let delivery):
                results.append(await outcome(of: delivery, task: wait.task))
            }
            if let ticket = wait.ticket { pending.remove(ticket) }
        }
        return results
    }

    /// Checks a message for a worker before it is handed over: its topic
    /// name and (unless `checkSize` is false) its size.
    /// `checkSize: false` for dead letters: the original passed the broker's
    /// limit, and the producer's `message.max.bytes` leaves 4 KiB for the
    /// headers added to it.
    func problem(with message: OutgoingMessage, checkSize: Bool = true) -> PublishError? {
        if let problem = TopicName.problem(message.topic) ?? policyProblem(message.topic) { return .invalid(problem) }
        let size = message.value.count + (message.key?.count ?? 0) + message.headers.reduce(0) { (sum: Int, header: KafkaHeader) in sum + header.name.utf8.count + (header.value?.count ?? 0) }
        if checkSize && size > maxMessageBytes {
            return .invalid("message is \(size) bytes (with key and headers); the limit is \(maxMessageBytes) (producer.max_message_bytes)")
        }
        return nil
    }

    /// Hands `message` to the producer without waiting (for workers: emitted
    /// tasks and dead letters); on the embedded broker its topic is created first.
    func enqueue(_ message: OutgoingMessage, checkSize: Bool = true) -> Result<PendingDelivery, PublishError> {
        if let problem = problem(with: message, checkSize: checkSize) { return .failure(problem) }
        do {
            try prepareTopic(message.topic)
        } catch {
            return .failure(.kafka(error as? KafkaError ?? KafkaError(code: -1, message: "\(error)")))
        }
        return .success(producer.enqueue(message))
    }

    /// Hands a checked `message` to the producer; its delivery report goes
    /// to `sink` with `token`. `.backpressure` when librdkafka's queue is
    /// full (the caller waits and tries again).
    func produce(_ message: OutgoingMessage, sink: DeliverySink, token: Int64) -> PublishError? {
        do {
            try prepareTopic(message.topic)
        } catch {
            return .kafka(error as? KafkaError ?? KafkaError(code: -1, message: "\(error)"))
        }
        guard let error = producer.produce(message, sink: sink, token: token) else { return nil }
        return error.isQueueFull ? .backpressure("producer queue is full") : .kafka(error)
    }

    /// After `.backpressure`: waits until a delivery report frees a place in
    /// librdkafka's queue (at most 100 ms), or `stop`.
    func waitForRoom(stop: StopSignal?) {
        producer.waitForRoom(stop: stop)
    }

    private func outcome(of delivery: PendingDelivery, task: TaskSpec) async -> Result<DeliveryReport, PublishError> {
        do {
            let report = try await delivery.report()
            publishedCounter(task.topic).increment()
            // The seed's delivery log line, kept for compatibility.
            logger.info("Future completed. Result: Ok((\(report.partition), \(report.offset)))",
                        metadata: [LogKey.topic: "\(report.topic)", LogKey.partition: "\(report.partition)", LogKey.offset: "\(report.offset)"])
            return .success(report)
        } catch {
            let kafkaError = error as? KafkaError ?? KafkaError(code: -1, message: "\(error)")
            metrics.counter(MetricName.publishErrors, [("topic", task.topic)]).increment()
            logger.warning("Future completed. Result: Err(\(kafkaError))", metadata: [LogKey.topic: "\(task.topic)"])
            if kafkaError.isTimeout { return .failure(.timedOut) }
            if kafkaError.isQueueFull { return .failure(.backpressure("producer queue is full; retry later")) }
            if kafkaError.isMessageTooLarge { return .failure(.invalid("message too large for the broker: \(kafkaError)")) }
            return .failure(.kafka(kafkaError))
        }
    }

    private func publishedCounter(_ topic: String) -> CoreMetrics.Counter {
        if let counter = publishedCounters.withLock({ $0[topic] }) { return counter }
        let counter = metrics.counter(MetricName.published, [("topic", topic)])
        publishedCounters.withLock { $0[topic] = counter }
        return counter
    }

    /// Why a client may not publish to `topic` ([api] topics, max_topics), or nil.
    private func policyProblem(_ topic: String) -> String? {
        knownTopics.withLock { policy.problem(topic, known: $0.contains(topic), tracked: $0.count) }
    }

    /// Distinct topics this daemon publishes to.
    var trackedTopics: Int { knownTopics.withLock { $0.count } }

    /// `prepareTopic` for async callers: creating a topic on the embedded
    /// broker waits for the mock cluster's thread, so it runs on a dedicated one
    /// (async callers of `enqueue` call this first, so `enqueue` finds the
    /// topic known and blocks on nothing).
    func prepareTopicOffPool(_ topic: String) async throws {
        guard knownTopics.withLock({ !$0.contains(topic) }) else { return }
        guard topicCreator != nil else { return try prepareTopic(topic) }  // nothing blocks then
        try await topicThread.run { [self] in try prepareTopic(topic) }
    }

    /// At a topic's first use: creates it on the embedded broker, and asks
    /// for its metadata so its first messages need not wait a second for
    /// librdkafka to look the topic up by itself.
    private func prepareTopic(_ topic: String) throws {
        // Checked again as the topic is added (publishers checked it just
        // before, but a schedule fired from a script was never checked).
        let refusal = knownTopics.withLock { known -> String?? in
            guard !known.contains(topic) else { return .none }  // known: nothing to do
            if let problem = policy.problem(topic, known: false, tracked: known.count) { return .some(problem) }
            known.insert(topic)
            return .some(nil)
        }
        guard let refusal else { return }
        if let refusal { throw KafkaError(code: -1, message: refusal) }
        if let topicCreator {
            do {
                try topicCreator(topic)
            } catch {
                knownTopics.withLock { _ = $0.remove(topic) }
                throw error
            }
        }
        producer.learnTopicSoon(topic)
    }
}
