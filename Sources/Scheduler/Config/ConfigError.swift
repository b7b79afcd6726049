/// A configuration problem that stops startup, naming the file, the key and,
/// where known, the line.
public struct ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The config file, if the problem is in one.
    public var file: String?
    /// Dotted key path, e.g. `groups[1].workers`.
    public var key: String?
    /// 1-based line in `file`, where known.
    public var line: Int?
    /// What is wrong.
    public var message: String

    /// Creates an error.
    public init(file: String?, key: String?, line: Int?, message: String) {
        self.file = file
        self.key = key
        self.line = line
        self.message = message
    }

    public var description: String {
        var location = file ?? "configuration"
        if let line { location += ":\(line)" }
        if let key { return "\(location): key '\(key)': \(message)" }
        return "\(location): \(message)"
    }
}
