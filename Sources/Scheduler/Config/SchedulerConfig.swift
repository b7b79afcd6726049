/// The whole configuration, as read from `config.toml` (see the commented
/// `config.toml` at the repository root for every key and its default).
public struct SchedulerConfig: Sendable, Equatable {
    /// `[kafka]`: where the brokers are.
    public var kafka = KafkaSection()
    /// `[api]`: the HTTP task API.
    public var api = APISection()
    /// `[producer]`: task generation and publishing.
    public var producer = ProducerSection()
    /// `[log]`: logging.
    public var log = LogSection()
    /// `[scripts]`: limits for every Lua state.
    public var scripts = ScriptsSection()
    /// `[schedules]`: scheduled and recurring tasks.
    public var schedules = SchedulesSection()
    /// `[cluster]`: the daemons' reports to each other (`GET /cluster`).
    public var cluster = ClusterSection()
    /// `[[groups]]`: the consumer groups and their worker pools.
    public var groups: [GroupConfig] = [GroupConfig()]

    /// The built-in defaults (the same as the shipped `config.toml`).
    public init() {}

    /// True when the daemon should start the embedded broker (`[kafka] brokers` is empty).
    public var usesEmbeddedBroker: Bool { kafka.brokers.isEmpty }
}

/// `[kafka]`.
public struct KafkaSection: Sendable, Equatable {
    /// Bootstrap servers (`host:port`). Empty (the default): start the embedded broker.
    public var brokers: [String] = []
    /// Partition count for topics the embedded broker creates. Default 4.
    public var partitions = 4
    /// Extra librdkafka properties (`[kafka.properties]`), e.g.
    /// `"security.protocol" = "SASL_SSL"`; passed to every client unchanged.
    public var properties: [String: String] = [:]
    /// `session.timeout.ms` of every consumer group this daemon joins (the
    /// worker groups and the schedule group): how long a killed daemon's
    /// partitions wait before moving. Default 10000.
    public var sessionTimeoutMs = 10_000
    /// Static membership (KIP-345) when not empty: each consumer's
    /// `group.instance.id` is `<instance_id>-<group>`, so a daemon restarted
    /// within the session timeout gets its partitions back without a
    /// rebalance. Unique per daemon, the same across its restarts. Default
    /// empty (dynamic membership).
    public var instanceID = ""

    /// How the consumers join their groups.
    public var membership: GroupMembership { GroupMembership(sessionTimeoutMs: sessionTimeoutMs, instanceID: instanceID) }
}

/// `[api]`.
public struct APISection: Sendable, Equatable {
    /// `host:port` the HTTP API listens on. Default `127.0.0.1:5000` (loopback only).
    public var listen = "127.0.0.1:5000"
    /// Largest accepted request body in bytes; larger bodies get 413. Default 10 MiB.
    public var maxBodyBytes = 10 * 1024 * 1024
    /// Bearer token required by the mutating endpoints (`POST /tasks/generate`,
    /// `DELETE /tasks`, `POST /scripts/reload`). Empty (default): no token. The environment
    /// variable `TASK_SCHEDULER_API_TOKEN`, when set, takes precedence, so the
    /// token need not sit in a file.
    public var token = ""
    /// Topics the API and scripts may publish, emit and schedule to, as
    /// patterns where `*` matches any run of characters (e.g. `orders.*`).
    /// Empty (the default): any topic. The daemon's own topics (pool,
    /// schedules, reports, dead letters) are always allowed.
    public var topics: [String] = []
    /// Most distinct topics this daemon publishes to (each costs memory for
    /// good: metric series, client state, a topic on the embedded broker);
    /// past it a new topic is refused (400). Default 1000.
    public var maxTopics = 1000

    /// The environment variable that sets `token`.
    public static let tokenVariable = "TASK_SCHEDULER_API_TOKEN"

    /// `listen` split into host and port (validated at load).
    public var hostAndPort: (host: String, port: Int) {
        let parts = listen.split(separator: ":", omittingEmptySubsequences: false)
        let port = Int(parts.last ?? "") ?? 5000
        let host = parts.dropLast().joined(separator: ":")
        return (host.trimmingCharacters(in: ["[", "]"]), port)
    }
}

/// `[producer]`.
public struct ProducerSection: Sendable, Equatable {
    /// Milliseconds between two `generate()` calls (seed: `query_timeout`, in seconds). Default 5000.
    public var intervalMs = 5000
    /// Milliseconds a task may wait for the broker's acknowledgement before it
    /// fails with "Producer timed out." (seed: `producer_timeout`). Default 5000.
    public var timeoutMs = 5000
    /// Largest accepted message (payload) in bytes; larger ones get 400.
    /// Default 1000000, Kafka's default `message.max.bytes`.
    public var maxMessageBytes = 1_000_000
    /// Most messages the producer holds unacknowledged
    /// (`queue.buffering.max.messages`); past it new tasks get 503 with
    /// `Retry-After` instead of growing memory. Default 100000.
    public var maxPending = 100_000
    /// Most tasks the task pool holds (`GET /tasks`, published every tick);
    /// past it `POST /tasks/generate` answers 409. Default 1000.
    public var maxPoolTasks = 1000
    /// The compacted topic the task pool is kept in and read back from at
    /// start. Default `task-scheduler.pool`.
    public var poolTopic = "task-scheduler.pool"
}

/// `[schedules]`: where scheduled tasks (`at`, `after`, `every`, `cron`) are kept.
public struct SchedulesSection: Sendable, Equatable {
    /// Whether this daemon takes part in firing schedules (joins the group,
    /// holds partitions, fires, lists its schedules). False: it only stores
    /// and cancels schedules (API, scripts); other daemons fire them.
    /// Default true.
    public var enabled = true
    /// The compacted topic schedules are kept in, keyed by schedule id.
    /// Default `task-scheduler.schedules`.
    public var topic = "task-scheduler.schedules"
    /// The consumer group the daemons share the schedule topic through: each
    /// schedule fires from the daemon holding its partition. Default
    /// `task-scheduler.schedules`.
    public var group = "task-scheduler.schedules"
    /// Partitions of the schedule topic (the embedded broker creates it with
    /// this many; on a real cluster create it with this many). A schedule's
    /// partition is a hash of its id modulo this number, so every daemon
    /// must use the same value. Default 4.
    public var partitions = 4
    /// Most schedules one daemon holds in memory; past it new schedules get
    /// 409. Default 1000000.
    public var maxSchedules = 1_000_000
}

/// `[cluster]`: every daemon reports its state to a shared topic and follows
/// the others' reports (`GET /cluster`, the dashboard, schedule owners).
public struct ClusterSection: Sendable, Equatable {
    /// The topic the reports go to, keyed by daemon id. Default
    /// `task-scheduler.reports`.
    public var reportsTopic = "task-scheduler.reports"
    /// Milliseconds between two reports of this daemon. A daemon silent for
    /// three of its intervals is shown as gone. Default 1000.
    public var reportIntervalMs = 1000
    /// This daemon's id in the reports. Empty (the default):
    /// `<host>:<pid>:<start time in ms>`, new at every start.
    public var name = ""
    /// The dead-letter redrive ledger: one partition (it orders every
    /// redrive's claims), compacted. Default `task-scheduler.redrive`.
    public var redriveTopic = "task-scheduler.redrive"
}

/// `[scripts]`: what one Lua call and one Lua state may use. Going over
/// fails that call (process: retry then dead letter; rotate: default policy).
public struct ScriptsSection: Sendable, Equatable {
    /// Lua VM instructions one call may execute. Default 50,000,000 (well
    /// under a second of pure Lua on this machine).
    public var maxInstructions = 50_000_000
    /// Memory one Lua state may hold, in MiB. Default 64.
    public var maxMemoryMB = 64
    /// Wall-clock milliseconds one call may take, time inside C library
    /// functions included. Default 5000 (the instruction budget normally
    /// ends a runaway call first; this one also bounds shutdown).
    public var maxCallMs = 5000
    /// Tasks and schedule records one call may hand to the daemon
    /// (`scheduler.emit`, `scheduler.schedule`, `scheduler.cancel`, the tasks
    /// `generate()` returns). Their copies live outside the Lua state, so
    /// `max_memory_mb` does not count them. Default 10000.
    public var maxCallEmits = 10_000
    /// Bytes one call may hand to the daemon, in MiB: what `max_call_emits`
    /// counts (topic, key, payload, headers) and the text of
    /// `scheduler.log`. Default 16.
    public var maxCallEmitMB = 16
    /// Schedule records (`scheduler.schedule`, `scheduler.cancel` outside
    /// `process()`: in `generate()`, `on_task()`, `init()`) that may wait for
    /// the broker's acknowledgement at once, over the daemon: they are
    /// written without waiting, so without a bound a script called often
    /// (every posted task runs `on_task`) piles them up while the broker is
    /// slow. Past it the binding raises. Default 10000.
    public var maxPendingRecords = 10_000
    /// Bytes of those records, in MiB. Default 64.
    public var maxPendingRecordMB = 64
}

/// `[log]`.
public struct LogSection: Sendable, Equatable {
    /// One of trace, debug, info, notice, warning, error, critical. Default info.
    public var level = "info"
    /// `text` (default: swift-log's lines) or `json` (one JSON object per
    /// line, `JSONLogLine`); see `LogFormat`.
    public var format = LogFormat.text.rawValue
}

/// One `[[groups]]` entry: a Kafka consumer group with a pool of workers.
public struct GroupConfig: Sendable, Equatable {
    /// The Kafka consumer group id. Default `workers`.
    public var name = "workers"
    /// Topics the group works through, in turn. Default A, B, C, D (the seed's).
    public var topics = ["A", "B", "C", "D"]
    /// Workers in this process's pool. Default 4.
    public var workers = 4
    /// Milliseconds a worker holds a partition before handing it on (seed: `consumer_timeout`). Default 6000.
    public var sliceMs = 6000

    /// Attempts at `process()` for one message before it is dead-lettered. Default 3.
    public var maxAttempts = 3
    /// Milliseconds to wait before retrying a failed message (doubles each attempt). Default 200.
    public var retryBackoffMs = 200
    /// Where messages go after the last failed attempt; `{topic}` is replaced
    /// by the source topic. Default `{topic}.dlq`.
    public var deadLetterTopic = "{topic}.dlq"
    /// Tasks emitted by `process()` that may wait for the broker's
    /// acknowledgement at once, over the whole group; past it a worker waits
    /// (back pressure). Bounds the memory pipelined emits take. Default 10000.
    public var maxInflightEmits = 10_000
    /// Bytes (topic, key, payload, headers) of those emits that may wait at
    /// once, over the group, in MiB; past it a worker waits the same way.
    /// One message whose emits alone are larger goes through an empty
    /// pipeline (its emits are bounded by `[scripts] max_call_emit_mb`).
    /// Default 64.
    public var maxInflightEmitMB = 64
    /// Key lanes per partition: each partition's messages are split by a
    /// hash of their key (FNV-1a, mod `lanes`; messages without a key go to
    /// lane 0) and each lane is leased on its own, so up to `lanes` workers
    /// work on one partition at once while each key keeps its order.
    /// Default 1: one lease per partition.
    public var lanes = 1
    /// How far (in offsets) a partition's fetch position may run ahead of
    /// its lowest unfinished offset across lanes; past it nothing more is
    /// fetched and the fast lanes wait for the slow one. Bounds the memory a
    /// slow lane makes the others buffer. Default 10000.
    public var laneMaxAhead = 10_000

    /// A group with the defaults.
    public init() {}

    /// A group with the given values.
    public init(name: String, topics: [String], workers: Int, sliceMs: Int) {
        self.name = name
        self.topics = topics
        self.workers = workers
        self.sliceMs = sliceMs
    }
}
