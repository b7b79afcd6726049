import Logging
import TOMLKit

// Every key of `config.toml`, declared once. The loader reads, the validator
// checks and unknown-key errors list keys from these tables only; the
// defaults are the sections' property initialisers (`SchedulerConfig.swift`).
// `ConfigDocsTests` holds `config.toml` and README.md to this list.

extension KafkaSection: ConfigSection {
    static var keys: [ConfigKey<Self>] {
        [
            .strings("brokers", \.brokers, doc: "bootstrap servers (host:port); empty: the embedded broker") { brokers in
                brokers.enumerated().first { !ConfigValidator.isHostPort($0.element) }
                    .map { "element \($0.offset) '\($0.element)' is not host:port" }
            },
            .int("partitions", \.partitions, 1...10_000, doc: "partitions of topics the embedded broker creates"),
            // librdkafka refuses a session longer than max.poll.interval.ms (default 300000).
            .int("session_timeout_ms", \.sessionTimeoutMs, 1000...300_000, doc: "session.timeout.ms of every consumer group the daemon joins"),
            .string("instance_id", \.instanceID, doc: "static membership (KIP-345) when set") { id in
                id.isEmpty ? nil : ConfigValidator.instanceIDProblem(id)
            },
            .textTable("properties", \.properties, doc: "librdkafka properties passed to every client"),
        ]
    }
}

extension APISection: ConfigSection {
    static var keys: [ConfigKey<Self>] {
        [
            .string("listen", \.listen, doc: "host:port the HTTP API listens on") { listen in
                ConfigValidator.isHostPort(listen) ? nil : "'\(listen)' is not host:port (e.g. 127.0.0.1:5000)"
            },
            .int("max_body_bytes", \.maxBodyBytes, 1...(1 << 30), doc: "largest request body; larger: 413"),
            .string("token", \.token, doc: "bearer token for the mutating endpoints"),
            .strings("topics", \.topics, doc: "topic patterns the API and scripts may publish to; empty: any") { patterns in
                patterns.lazy.compactMap(TopicPolicy.patternProblem).first
            },
            .int("max_topics", \.maxTopics, 1...1_000_000, doc: "distinct topics this daemon publishes to"),
        ]
    }
}

extension ProducerSection: ConfigSection {
    static var keys: [ConfigKey<Self>] {
        [
            .int("interval_ms", \.intervalMs, 1...86_400_000, doc: "milliseconds between generate() ticks"),
            .int("timeout_ms", \.timeoutMs, 1...3_600_000, doc: "delivery timeout: 503 'Producer timed out.' after it"),
            .int("max_message_bytes", \.maxMessageBytes, 1...1_000_000_000, doc: "largest task; larger: 400"),
            .int("max_pending", \.maxPending, 1...10_000_000, doc: "tasks waiting for the broker; past it: 503"),
            .int("max_pool_tasks", \.maxPoolTasks, 1...1_000_000, doc: "tasks the pool holds; past it: 409"),
            .string("pool_topic", \.poolTopic, doc: "compacted topic the task pool is kept in", problem: TopicName.problem),
        ]
    }
}

extension SchedulesSection: ConfigSection {
    static var keys: [ConfigKey<Self>] {
        [
            .bool("enabled", \.enabled, doc: "whether this daemon holds and fires schedules"),
            .string("topic", \.topic, doc: "compacted topic schedules are kept in", problem: TopicName.problem),
            .string("group", \.group, doc: "consumer group the daemons share schedules through") { $0.isEmpty ? "must not be empty" : nil },
            .int("partitions", \.partitions, 1...10_000, doc: "partitions of the schedule topic; the same on every daemon"),
            .int("max_schedules", \.maxSchedules, 1...100_000_000, doc: "schedules one daemon holds; past it: 409"),
        ]
    }
}

extension ClusterSection: ConfigSection {
    static var keys: [ConfigKey<Self>] {
        [
            .string("reports_topic", \.reportsTopic, doc: "topic every daemon reports to and follows", problem: TopicName.problem),
            .int("report_interval_ms", \.reportIntervalMs, 100...60_000, doc: "milliseconds between two reports"),
            .string("name", \.name, doc: "this daemon's id in the reports; empty: host:pid:start") { name in
                name.count > 200 || name.contains(where: \.isNewline) ? "must be at most 200 characters on one line" : nil
            },
            .string("redrive_topic", \.redriveTopic, doc: "the dead-letter redrive ledger (one partition)", problem: TopicName.problem),
        ]
    }
}

extension LogSection: ConfigSection {
    static var keys: [ConfigKey<Self>] {
        [
            .string("level", \.level, doc: "log level (--log-level overrides)") { level in
                Logger.Level(rawValue: level) == nil ? "'\(level)' is not one of trace, debug, info, notice, warning, error, critical" : nil
            },
            .string("format", \.format, doc: "text or json (--log-format overrides)") { format in
                LogFormat(rawValue: format) == nil ? "'\(format)' is not one of text, json" : nil
            },
        ]
    }
}

extension ScriptsSection: ConfigSection {
    static var keys: [ConfigKey<Self>] {
        [
            .int("max_instructions", \.maxInstructions, 1...Int(Int32.max), doc: "Lua instructions one call may run"),
            .int("max_memory_mb", \.maxMemoryMB, 1...65_536, doc: "MiB one Lua state may hold"),
            .int("max_call_ms", \.maxCallMs, 1...600_000, doc: "wall-clock milliseconds one call may take"),
            .int("max_call_emits", \.maxCallEmits, 1...10_000_000, doc: "tasks and schedule records one call may hand over"),
            .int("max_call_emit_mb", \.maxCallEmitMB, 1...4096, doc: "MiB of those one call may hand over"),
            .int("max_pending_records", \.maxPendingRecords, 1...10_000_000,
                 doc: "schedule records scripts wrote outside process() that await the broker, over the daemon"),
            .int("max_pending_record_mb", \.maxPendingRecordMB, 1...65_536, doc: "MiB of those"),
        ]
    }
}

extension GroupConfig: ConfigSection {
    static var keys: [ConfigKey<Self>] {
        [
            .string("name", \.name, doc: "the Kafka consumer group id") { $0.isEmpty ? "must not be empty" : nil },
            .strings("topics", \.topics, doc: "topics the group works through, in turn") { topics in
                topics.isEmpty ? "must name at least one topic" : topics.lazy.compactMap(TopicName.problem).first
            },
            .int("workers", \.workers, 1...1024, doc: "workers in this daemon's pool"),
            .int("slice_ms", \.sliceMs, 1...86_400_000, doc: "milliseconds a worker holds a partition"),
            .int("max_attempts", \.maxAttempts, 1...1000, doc: "process() attempts before the dead letter"),
            .int("retry_backoff_ms", \.retryBackoffMs, 0...30_000, doc: "first retry wait, doubling"),
            // `{topic}` stands for a topic name, so the pattern is checked with one in its place.
            .string("dead_letter_topic", \.deadLetterTopic, doc: "dead-letter topic pattern ({topic}: the source topic)") { pattern in
                TopicName.problem(pattern.replacingOccurrences(of: "{topic}", with: "t"))
            },
            .int("max_inflight_emits", \.maxInflightEmits, 1...10_000_000, doc: "emits awaiting acknowledgement over the group"),
            .int("max_inflight_emit_mb", \.maxInflightEmitMB, 1...65_536, doc: "MiB of emits awaiting acknowledgement over the group"),
            .int("lanes", \.lanes, 1...256, doc: "key lanes per partition"),
            .int("lane_max_ahead", \.laneMaxAhead, 1...10_000_000, doc: "offsets a partition may be read past its slowest lane"),
        ]
    }
}

/// A top-level table of the file: a section, or the `[[groups]]` array.
struct ConfigTable {
    let name: String
    /// The table's header as `config.toml` and the README write it.
    let header: String
    /// The declared keys, for docs and their tests.
    let keys: [KeyDescription]
    let read: (TOMLValueConvertible, inout SchedulerConfig, TOMLReader) throws -> Void
    let check: (SchedulerConfig, TOMLReader) throws -> Void

    /// Every table, in the order unknown-key errors list them.
    static var all: [ConfigTable] {
        [
            .section("kafka", \.kafka), .section("api", \.api), .section("producer", \.producer), .section("log", \.log),
            .section("scripts", \.scripts), .section("schedules", \.schedules), .section("cluster", \.cluster), .groups,
        ]
    }

    static func section<S: ConfigSection>(_ name: String, _ field: WritableKeyPath<SchedulerConfig, S>) -> ConfigTable {
        ConfigTable(name: name, header: "[\(name)]", keys: S.keys.map(\.description),
                    read: { value, config, reader in
                        config[keyPath: field] = try S.read(reader.table(value, name), KeyPlace(reader: reader, table: name, prefix: name))
                    },
                    check: { config, reader in try S.check(config[keyPath: field], KeyPlace(reader: reader, table: name, prefix: name)) })
    }

    /// `[[groups]]`: each entry is a `GroupConfig`; names must differ between entries.
    static var groups: ConfigTable {
        ConfigTable(name: "groups", header: "[[groups]]", keys: GroupConfig.keys.map(\.description),
                    read: { value, config, reader in
                        guard let array = value.array else {
                            throw reader.wrongType("groups", expected: "array of tables ([[groups]])", got: value, table: nil)
                        }
                        config.groups = try array.enumerated().map { index, element in
                            try GroupConfig.read(reader.table(element, "groups[\(index)]"), groupPlace(index, reader))
                        }
                    },
                    check: { config, reader in
                        var seen: Set<String> = []
                        for (index, group) in config.groups.enumerated() {
                            try GroupConfig.check(group, groupPlace(index, reader))
                            if !seen.insert(group.name).inserted {
                                throw groupPlace(index, reader).error("name", "duplicate group name '\(group.name)'")
                            }
                        }
                    })
    }

    private static func groupPlace(_ index: Int, _ reader: TOMLReader) -> KeyPlace {
        KeyPlace(reader: reader, table: "groups#\(index)", prefix: "groups[\(index)]")
    }
}
