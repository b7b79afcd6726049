import Logging

/// Range and consistency checks run once at load, after types are known.
enum ConfigValidator {
    static func validate(_ config: SchedulerConfig, _ reader: TOMLReader) throws {
        try positive(config.kafka.partitions, "kafka.partitions", table: "kafka", reader, max: 10_000)
        for (index, broker) in config.kafka.brokers.enumerated() where !isHostPort(broker) {
            throw reader.error("kafka.brokers", table: "kafka", "element \(index) '\(broker)' is not host:port")
        }
        // librdkafka refuses a session longer than max.poll.interval.ms (default 300000).
        if config.kafka.sessionTimeoutMs < 1000 || config.kafka.sessionTimeoutMs > 300_000 {
            throw reader.error("kafka.session_timeout_ms", table: "kafka", "must be between 1000 and 300000, got \(config.kafka.sessionTimeoutMs)")
        }
        if !config.kafka.instanceID.isEmpty, let problem = instanceIDProblem(config.kafka.instanceID) {
            throw reader.error("kafka.instance_id", table: "kafka", problem)
        }
        if !isHostPort(config.api.listen) {
            throw reader.error("api.listen", table: "api", "'\(config.api.listen)' is not host:port (e.g. 127.0.0.1:5000)")
        }
        try positive(config.api.maxBodyBytes, "api.max_body_bytes", table: "api", reader, max: 1 << 30)
        try positive(config.api.maxTopics, "api.max_topics", table: "api", reader, max: 1_000_000)
        for pattern in config.api.topics {
            if let problem = TopicPolicy.patternProblem(pattern) { throw reader.error("api.topics", table: "api", problem) }
        }
        try positive(config.producer.intervalMs, "producer.interval_ms", table: "producer", reader, max: 86_400_000)
        try positive(config.producer.timeoutMs, "producer.timeout_ms", table: "producer", reader, max: 3_600_000)
        try positive(config.producer.maxMessageBytes, "producer.max_message_bytes", table: "producer", reader, max: 1_000_000_000)
        try positive(config.producer.maxPending, "producer.max_pending", table: "producer", reader, max: 10_000_000)
        try positive(config.producer.maxPoolTasks, "producer.max_pool_tasks", table: "producer", reader, max: 1_000_000)
        if let problem = TopicName.problem(config.producer.poolTopic) {
            throw reader.error("producer.pool_topic", table: "producer", problem)
        }
        if let problem = TopicName.problem(config.schedules.topic) {
            throw reader.error("schedules.topic", table: "schedules", problem)
        }
        if config.schedules.topic == config.producer.poolTopic {
            throw reader.error("schedules.topic", table: "schedules", "must differ from producer.pool_topic")
        }
        if config.schedules.group.isEmpty { throw reader.error("schedules.group", table: "schedules", "must not be empty") }
        try positive(config.schedules.partitions, "schedules.partitions", table: "schedules", reader, max: 10_000)
        try positive(config.schedules.maxSchedules, "schedules.max_schedules", table: "schedules", reader, max: 100_000_000)
        if let problem = TopicName.problem(config.cluster.reportsTopic) {
            throw reader.error("cluster.reports_topic", table: "cluster", problem)
        }
        if [config.producer.poolTopic, config.schedules.topic].contains(config.cluster.reportsTopic) {
            throw reader.error("cluster.reports_topic", table: "cluster", "must differ from producer.pool_topic and schedules.topic")
        }
        if let problem = TopicName.problem(config.cluster.redriveTopic) {
            throw reader.error("cluster.redrive_topic", table: "cluster", problem)
        }
        if [config.producer.poolTopic, config.schedules.topic, config.cluster.reportsTopic].contains(config.cluster.redriveTopic) {
            throw reader.error("cluster.redrive_topic", table: "cluster", "must differ from producer.pool_topic, schedules.topic and cluster.reports_topic")
        }
        if config.cluster.reportIntervalMs < 100 || config.cluster.reportIntervalMs > 60_000 {
            throw reader.error("cluster.report_interval_ms", table: "cluster", "must be between 100 and 60000, got \(config.cluster.reportIntervalMs)")
        }
        if config.cluster.name.count > 200 || config.cluster.name.contains(where: { $0.isNewline }) {
            throw reader.error("cluster.name", table: "cluster", "must be at most 200 characters on one line")
        }
        try positive(config.scripts.maxInstructions, "scripts.max_instructions", table: "scripts", reader, max: Int(Int32.max))
        try positive(config.scripts.maxMemoryMB, "scripts.max_memory_mb", table: "scripts", reader, max: 65_536)
        try positive(config.scripts.maxCallMs, "scripts.max_call_ms", table: "scripts", reader, max: 600_000)
        try positive(config.scripts.maxCallEmits, "scripts.max_call_emits", table: "scripts", reader, max: 10_000_000)
        try positive(config.scripts.maxCallEmitMB, "scripts.max_call_emit_mb", table: "scripts", reader, max: 4096)
        try positive(config.scripts.maxPendingRecords, "scripts.max_pending_records", table: "scripts", reader, max: 10_000_000)
        try positive(config.scripts.maxPendingRecordMB, "scripts.max_pending_record_mb", table: "scripts", reader, max: 65_536)
        if Logger.Level(rawValue: config.log.level) == nil {
            throw reader.error("log.level", table: "log",
                               "'\(config.log.level)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        if LogFormat(rawValue: config.log.format) == nil {
            throw reader.error("log.format", table: "log", "'\(config.log.format)' is not one of text, json")
        }
        var seen: Set<String> = []
        for (index, group) in config.groups.enumerated() {
            let table = "groups#\(index)"
            let prefix = "groups[\(index)]"
            if group.name.isEmpty {
                throw reader.error("\(prefix).name", table: table, "must not be empty")
            }
            if !seen.insert(group.name).inserted {
                throw reader.error("\(prefix).name", table: table, "duplicate group name '\(group.name)'")
            }
            if group.topics.isEmpty {
                throw reader.error("\(prefix).topics", table: table, "must name at least one topic")
            }
            for topic in group.topics {
                if let problem = TopicName.problem(topic) {
                    throw reader.error("\(prefix).topics", table: table, problem)
                }
            }
            try positive(group.workers, "\(prefix).workers", table: table, reader, max: 1024)
            try positive(group.sliceMs, "\(prefix).slice_ms", table: table, reader, max: 86_400_000)
            try positive(group.maxAttempts, "\(prefix).max_attempts", table: table, reader, max: 1000)
            try positive(group.maxInflightEmits, "\(prefix).max_inflight_emits", table: table, reader, max: 10_000_000)
            try positive(group.maxInflightEmitMB, "\(prefix).max_inflight_emit_mb", table: table, reader, max: 65_536)
            try positive(group.lanes, "\(prefix).lanes", table: table, reader, max: 256)
            try positive(group.laneMaxAhead, "\(prefix).lane_max_ahead", table: table, reader, max: 10_000_000)
            if group.retryBackoffMs < 0 || group.retryBackoffMs > 30_000 {
                throw reader.error("\(prefix).retry_backoff_ms", table: table, "must be between 0 and 30000, got \(group.retryBackoffMs)")
            }
            if let problem = TopicName.problem(group.deadLetterTopic.replacingOccurrences(of: "{topic}", with: "t")) {
                throw reader.error("\(prefix).dead_letter_topic", table: table, problem)
            }
        }
    }

    private static func positive(_ value: Int, _ path: String, table: String, _ reader: TOMLReader, max: Int) throws {
        if value < 1 || value > max {
            throw reader.error(path, table: table, "must be between 1 and \(max), got \(value)")
        }
    }

    /// Kafka checks `group.instance.id` as it checks topic names: up to 249
    /// of [A-Za-z0-9._-]; the group id is appended, so keep the base short.
    static func instanceIDProblem(_ id: String) -> String? {
        if id.count > 200 { return "is \(id.count) characters long; at most 200" }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if let bad = id.first(where: { !allowed.contains($0) }) {
            return "'\(id)' contains '\(bad)'; use letters, digits, '.', '_' and '-'"
        }
        return nil
    }

    static func isHostPort(_ text: String) -> Bool {
        guard let colon = text.lastIndex(of: ":") else { return false }
        let host = text[..<colon]
        guard let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return false }
        return !host.isEmpty
    }
}
