import Logging

/// Everything `buildApplication` needs: the same for `main` and the tests.
public struct LaunchOptions: Sendable {
    /// The validated configuration.
    public var config: SchedulerConfig
    /// Directory holding `generate.lua` and the other scripts.
    public var scriptsDirectory: String
    /// Root logger.
    public var logger: Logger
    /// Called with the bound HTTP port once the API listens (useful with port 0).
    public var onListening: (@Sendable (Int) async -> Void)?

    /// Creates launch options.
    public init(config: SchedulerConfig, scriptsDirectory: String, logger: Logger, onListening: (@Sendable (Int) async -> Void)? = nil) {
        self.config = config
        self.scriptsDirectory = scriptsDirectory
        self.logger = logger
        self.onListening = onListening
    }
}
