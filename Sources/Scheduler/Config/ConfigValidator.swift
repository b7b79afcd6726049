/// Range and consistency checks run once at load, after types are known:
/// each key's own check (declared with the key, `ConfigKeys.swift`), then
/// the rules between sections.
enum ConfigValidator {
    static func validate(_ config: SchedulerConfig, _ reader: TOMLReader) throws {
        for table in ConfigTable.all { try table.check(config, reader) }
        try distinctTopics(config, reader)
    }

    /// The daemon's own topics hold different records: one topic for two would mix them.
    private static func distinctTopics(_ config: SchedulerConfig, _ reader: TOMLReader) throws {
        if config.schedules.topic == config.producer.poolTopic {
            throw reader.error("schedules.topic", table: "schedules", "must differ from producer.pool_topic")
        }
        if [config.producer.poolTopic, config.schedules.topic].contains(config.cluster.reportsTopic) {
            throw reader.error("cluster.reports_topic", table: "cluster", "must differ from producer.pool_topic and schedules.topic")
        }
        if [config.producer.poolTopic, config.schedules.topic, config.cluster.reportsTopic].contains(config.cluster.redriveTopic) {
            throw reader.error("cluster.redrive_topic", table: "cluster", "must differ from producer.pool_topic, schedules.topic and cluster.reports_topic")
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
