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
        let tables = ConfigTable.all
        for (key, value) in table {
            if let declared = tables.first(where: { $0.name == key }) {
                try declared.read(value, &config, reader)
            } else if SeedConfig.keys.contains(key) {
                seedKeys[key] = value
            } else {
                throw reader.unknownKey(key, table: nil, allowed: tables.map(\.name) + SeedConfig.keys.sorted())
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
}
