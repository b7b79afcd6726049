import TOMLKit

/// The Rust seed's flat `config.toml`, mapped onto `SchedulerConfig`.
///
/// | seed key | here |
/// |---|---|
/// | `producer_timeout` (ms) | `producer.timeout_ms` |
/// | `query_timeout` (s: the seed sleeps `Duration::from_secs`) | `producer.interval_ms` = 1000 × value |
/// | `consumer_timeout` (ms) | `slice_ms` of every group |
/// | `brokers` (array or comma-separated string) | `kafka.brokers` |
/// | `inital_topic_list` | `topics` of every group |
/// | `num_workers` | `workers` of every group |
/// | `num_groups` | that many groups: `workers` for one, `group-0`, `group-1`, … for more |
/// | `listening_port` | `api.listen` = `127.0.0.1:<port>` |
/// | `enable_auto_commit`, `title` | accepted and ignored: offsets are always committed after processing |
enum SeedConfig {
    static let keys: Set<String> = [
        "producer_timeout", "consumer_timeout", "query_timeout", "brokers", "inital_topic_list",
        "enable_auto_commit", "num_workers", "num_groups", "listening_port", "title",
    ]

    static func apply(_ values: [String: TOMLValueConvertible], to config: inout SchedulerConfig, _ reader: TOMLReader) throws {
        var template = config.groups.first ?? GroupConfig()
        var groupCount = config.groups.count
        for (key, value) in values.sorted(by: { $0.key < $1.key }) {
            switch key {
            case "producer_timeout": config.producer.timeoutMs = try reader.int(value, key, table: nil)
            case "query_timeout":
                // Seconds: the seed's comment says ms, its code sleeps Duration::from_secs.
                let seconds = try reader.int(value, key, table: nil)
                guard (1...86_400).contains(seconds) else {
                    throw reader.error(key, table: nil, "must be between 1 and 86400 (seconds between ticks), got \(seconds)")
                }
                config.producer.intervalMs = seconds * 1000
            case "consumer_timeout": template.sliceMs = try reader.int(value, key, table: nil)
            case "brokers":
                if let single = value.string {
                    config.kafka.brokers = single.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                } else {
                    config.kafka.brokers = try reader.stringList(value, key, table: nil)
                }
            case "inital_topic_list": template.topics = try reader.stringList(value, key, table: nil)
            case "num_workers": template.workers = try reader.int(value, key, table: nil)
            case "num_groups":
                groupCount = try reader.int(value, key, table: nil)
                if groupCount < 1 { throw reader.error(key, table: nil, "must be at least 1, got \(groupCount)") }
            case "listening_port":
                let port = try reader.int(value, key, table: nil)
                config.api.listen = "127.0.0.1:\(port)"
            case "enable_auto_commit": _ = try reader.bool(value, key, table: nil)
            case "title": _ = try reader.string(value, key, table: nil)
            default: break
            }
        }
        if groupCount == 1 {
            config.groups = [template]
        } else {
            config.groups = (0..<groupCount).map { index in
                var group = template
                group.name = "group-\(index)"
                return group
            }
        }
    }
}
