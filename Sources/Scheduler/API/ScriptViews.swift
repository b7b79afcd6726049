import Foundation

/// Body of `GET /scripts`.
public struct ScriptsView: Codable, Sendable {
    /// Scripts directory.
    public var directory: String
    /// Reload generation in force.
    public var generation: Int
    /// Each script in force.
    public var scripts: [ScriptView]
    /// The last reload, if any.
    public var last_reload: ReloadView?
}

/// One script in `GET /scripts`.
public struct ScriptView: Codable, Sendable {
    public var name: String
    public var path: String
    /// Content hash.
    public var version: String
    /// When this version was loaded (ISO 8601).
    public var loaded_at: String
    /// Lua errors so far, per hook.
    public var errors: [String: Int]
}

/// A reload in `GET /scripts` and the answer of `POST /scripts/reload`.
public struct ReloadView: Codable, Sendable {
    public var at: String
    /// `ok` or `failed`.
    public var result: String
    public var changed: [String]
    public var error: ErrorView?

    init(_ result: ReloadResult) {
        self.at = ISO8601DateFormatter().string(from: result.at)
        self.result = result.ok ? "ok" : "failed"
        self.changed = result.changed
        self.error = result.error.map { ErrorView(script: $0.script, line: $0.line, message: $0.message) }
    }
}

/// A script error with its place.
public struct ErrorView: Codable, Sendable {
    public var script: String
    public var line: Int?
    public var message: String
}
