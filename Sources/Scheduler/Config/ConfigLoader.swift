import Foundation
import TOMLKit

/// Reads `config.toml` into a validated `SchedulerConfig`.
///
/// Both the sectioned schema and the Rust seed's flat file (`producer_timeout`,
/// `consumer_timeout`, `query_timeout`, `brokers`, `inital_topic_list`,
/// `enable_auto_commit`, `num_workers`, `num_groups`, `listening_port`,
/// `title`) are accepted; seed keys are mapped onto the schema. Unknown keys
/// and wrong types are errors, not warnings: a typo must not silently fall
/// back to a default.
public enum ConfigLoader {
    /// The file read when no `--config` is given, if it exists.
    public static let defaultPath = "config.toml"

    /// Loads `path`, or `config.toml` in the working directory when `path` is
    /// nil and that file exists, or the built-in defaults otherwise.
    /// `TASK_SCHEDULER_API_TOKEN` in `environment`, when set, wins over the file.
    public static func load(path: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> SchedulerConfig {
        try load(path: path, orIfPresent: defaultPath, environment: environment)
    }

    static func load(path: String?, orIfPresent fallback: String, environment: [String: String]) throws -> SchedulerConfig {
        let chosen: String
        if let path {
            chosen = path
        } else if FileManager.default.fileExists(atPath: fallback) {
            chosen = fallback
        } else {
            var config = SchedulerConfig()
            applyEnvironment(environment, to: &config)
            return config
        }
        guard let data = FileManager.default.contents(atPath: chosen) else {
            let exists = FileManager.default.fileExists(atPath: chosen)
            throw ConfigError(file: chosen, key: nil, line: nil,
                              message: exists ? "cannot read the file" : "file not found")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: chosen, key: nil, line: nil, message: "file is not UTF-8 text")
        }
        return try parse(text, file: chosen, environment: environment)
    }

    /// Parses TOML `text`; `file` names it in errors. `TASK_SCHEDULER_API_TOKEN`
    /// in `environment`, when set and not empty, wins over `[api] token`.
    public static func parse(_ text: String, file: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> SchedulerConfig {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigError(file: file, key: nil, line: error.source.begin.line,
                              message: "TOML syntax error: \(error.description)")
        }
        let reader = TOMLReader(file: file, source: text)
        var config = SchedulerConfig()
        var seedKeys: [String: TOMLValueConvertible] = [:]
        for (key, value) in table {
            switch key {
            case "kafka": try readKafka(reader.table(value, key), into: &config.kafka, reader)
            case "api": try readAPI(reader.table(value, key), into: &config.api, reader)
            case "producer": try readProducer(reader.table(value, key), into: &config.producer, reader)
            case "log": try readLog(reader.table(value, key), into: &config.log, reader)
            case "scripts": try readScripts(reader.table(value, key), into: &config.scripts, reader)
            case "schedules": try readSchedules(reader.table(value, key), into: &config.schedules, reader)
            case "cluster": try readCluster(reader.table(value, key), into: &config.cluster, reader)
            case "groups": config.groups = try readGroups(value, reader)
            case _ where SeedConfig.keys.contains(key): seedKeys[key] = value
            default: throw reader.unknownKey(key, table: nil, allowed: ["kafka", "api", "producer", "log", "scripts", "schedules", "cluster", "groups"] + SeedConfig.keys.sorted())
            }
        }
        if !seedKeys.isEmpty { try SeedConfig.apply(seedKeys, to: &config, reader) }
        applyEnvironment(environment, to: &config)
        try ConfigValidator.validate(config, reader)
        return config
    }

    private static func applyEnvironment(_ environment: [String: String], to config: inout SchedulerConfig) {
        if let token = environment[APISection.tokenVariable], !token.isEmpty {
            config.api.token = token
        }
    }

    private static func readKafka(_ table: TOMLTable, into section: inout KafkaSection, _ reader: TOMLReader) throws {
        for (key, value) in table {
            let path = "kafka.\(key)"
            switch key {
            case "brokers": section.brokers = try reader.stringList(value, path, table: "kafka")
            case "partitions": section.partitions = try reader.int(value, path, table: "kafka")
            case "session_timeout_ms": section.sessionTimeoutMs = try reader.int(value, path, table: "kafka")
            case "instance_id": section.instanceID = try reader.string(value, path, table: "kafka")
            case "properties":
                let props = try reader.table(value, path)
                for (name, prop) in props {
                    section.properties[name] = try reader.scalarText(prop, "\(path).\(name)", table: "kafka.properties")
                }
            default: throw reader.unknownKey(key, table: "kafka", allowed: ["brokers", "partitions", "session_timeout_ms", "instance_id", "properties"])
            }
        }
    }

    private static func readAPI(_ table: TOMLTable, into section: inout APISection, _ reader: TOMLReader) throws {
        for (key, value) in table {
            let path = "api.\(key)"
            switch key {
            case "listen": section.listen = try reader.string(value, path, table: "api")
            case "max_body_bytes": section.maxBodyBytes = try reader.int(value, path, table: "api")
            case "token": section.token = try reader.string(value, path, table: "api")
            case "topics": section.topics = try reader.stringList(value, path, table: "api")
            case "max_topics": section.maxTopics = try reader.int(value, path, table: "api")
            default: throw reader.unknownKey(key, table: "api", allowed: ["listen", "max_body_bytes", "token", "topics", "max_topics"])
            }
        }
    }

    private static func readProducer(_ table: TOMLTable, into section: inout ProducerSection, _ reader: TOMLReader) throws {
        for (key, value) in table {
            let path = "producer.\(key)"
            switch key {
            case "interval_ms": section.intervalMs = try reader.int(value, path, table: "producer")
            case "timeout_ms": section.timeoutMs = try reader.int(value, path, table: "producer")
            case "max_message_bytes": section.maxMessageBytes = try reader.int(value, path, table: "producer")
            case "max_pending": section.maxPending = try reader.int(value, path, table: "producer")
            case "max_pool_tasks": section.maxPoolTasks = try reader.int(value, path, table: "producer")
            case "pool_topic": section.poolTopic = try reader.string(value, path, table: "producer")
            default:
                throw reader.unknownKey(key, table: "producer", allowed: [
                    "interval_ms", "timeout_ms", "max_message_bytes", "max_pending", "max_pool_tasks", "pool_topic",
                ])
            }
        }
    }

    private static func readLog(_ table: TOMLTable, into section: inout LogSection, _ reader: TOMLReader) throws {
        for (key, value) in table {
            switch key {
            case "level": section.level = try reader.string(value, "log.level", table: "log")
            case "format": section.format = try reader.string(value, "log.format", table: "log")
            default: throw reader.unknownKey(key, table: "log", allowed: ["level", "format"])
            }
        }
    }

    private static func readScripts(_ table: TOMLTable, into section: inout ScriptsSection, _ reader: TOMLReader) throws {
        for (key, value) in table {
            let path = "scripts.\(key)"
            switch key {
            case "max_instructions": section.maxInstructions = try reader.int(value, path, table: "scripts")
            case "max_memory_mb": section.maxMemoryMB = try reader.int(value, path, table: "scripts")
            case "max_call_ms": section.maxCallMs = try reader.int(value, path, table: "scripts")
            case "max_call_emits": section.maxCallEmits = try reader.int(value, path, table: "scripts")
            case "max_call_emit_mb": section.maxCallEmitMB = try reader.int(value, path, table: "scripts")
            case "max_pending_records": section.maxPendingRecords = try reader.int(value, path, table: "scripts")
            case "max_pending_record_mb": section.maxPendingRecordMB = try reader.int(value, path, table: "scripts")
            default: throw reader.unknownKey(key, table: "scripts", allowed: ["max_instructions", "max_memory_mb", "max_call_ms",
                                                                           "max_call_emits", "max_call_emit_mb",
                                                                           "max_pending_records", "max_pending_record_mb"])
            }
        }
    }

    private static func readSchedules(_ table: TOMLTable, into section: inout SchedulesSection, _ reader: TOMLReader) throws {
        for (key, value) in table {
            let path = "schedules.\(key)"
            switch key {
            case "enabled": section.enabled = try reader.bool(value, path, table: "schedules")
            case "topic": section.topic = try reader.string(value, path, table: "schedules")
            case "group": section.group = try reader.string(value, path, table: "schedules")
            case "partitions": section.partitions = try reader.int(value, path, table: "schedules")
            case "max_schedules": section.maxSchedules = try reader.int(value, path, table: "schedules")
            default: throw reader.unknownKey(key, table: "schedules", allowed: ["enabled", "topic", "group", "partitions", "max_schedules"])
            }
        }
    }

    private static func readCluster(_ table: TOMLTable, into section: inout ClusterSection, _ reader: TOMLReader) throws {
        for (key, value) in table {
            let path = "cluster.\(key)"
            switch key {
            case "reports_topic": section.reportsTopic = try reader.string(value, path, table: "cluster")
            case "redrive_topic": section.redriveTopic = try reader.string(value, path, table: "cluster")
            case "report_interval_ms": section.reportIntervalMs = try reader.int(value, path, table: "cluster")
            case "name": section.name = try reader.string(value, path, table: "cluster")
            default: throw reader.unknownKey(key, table: "cluster", allowed: ["reports_topic", "report_interval_ms", "name", "redrive_topic"])
            }
        }
    }

    private static func readGroups(_ value: TOMLValueConvertible, _ reader: TOMLReader) throws -> [GroupConfig] {
        guard let array = value.array else {
            throw reader.wrongType("groups", expected: "array of tables ([[groups]])", got: value, table: nil)
        }
        var groups: [GroupConfig] = []
        for (index, element) in array.enumerated() {
            let table = try reader.table(element, "groups[\(index)]")
            var group = GroupConfig()
            for (key, value) in table {
                let path = "groups[\(index)].\(key)"
                let header = "groups#\(index)"
                switch key {
                case "name": group.name = try reader.string(value, path, table: header)
                case "topics": group.topics = try reader.stringList(value, path, table: header)
                case "workers": group.workers = try reader.int(value, path, table: header)
                case "slice_ms": group.sliceMs = try reader.int(value, path, table: header)
                case "max_attempts": group.maxAttempts = try reader.int(value, path, table: header)
                case "retry_backoff_ms": group.retryBackoffMs = try reader.int(value, path, table: header)
                case "dead_letter_topic": group.deadLetterTopic = try reader.string(value, path, table: header)
                case "max_inflight_emits": group.maxInflightEmits = try reader.int(value, path, table: header)
                case "max_inflight_emit_mb": group.maxInflightEmitMB = try reader.int(value, path, table: header)
                case "lanes": group.lanes = try reader.int(value, path, table: header)
                case "lane_max_ahead": group.laneMaxAhead = try reader.int(value, path, table: header)
                default:
                    throw reader.unknownKey(key, table: header, allowed: [
                        "name", "topics", "workers", "slice_ms", "max_attempts", "retry_backoff_ms", "dead_letter_topic",
                        "max_inflight_emits", "max_inflight_emit_mb", "lanes", "lane_max_ahead",
                    ], path: path)
                }
            }
            groups.append(group)
        }
        return groups
    }
}
