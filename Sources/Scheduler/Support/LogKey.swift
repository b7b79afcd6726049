import Logging

/// Every log metadata key the scheduler uses, in one place, so that log
/// consumers can rely on the names.
public enum LogKey {
    public static let client = "kafka.client"
    public static let topic = "topic"
    public static let partition = "partition"
    public static let offset = "offset"
    /// The key lane of a partition (`[[groups]] lanes`).
    public static let lane = "lane"
    public static let key = "key"
    public static let group = "group"
    public static let worker = "worker"
    public static let script = "script"
    public static let line = "line"
    public static let error = "error"
    public static let bootstrap = "bootstrap_servers"
    public static let tick = "tick"
    public static let listen = "listen"
    public static let count = "count"
    public static let schedule = "schedule"
    public static let due = "due"
}

/// Shared loggers for components that have no owner to hand them one
/// (librdkafka's C log callback).
enum KafkaLog {
    static let logger = Logger(label: "task-scheduler.rdkafka")
}
