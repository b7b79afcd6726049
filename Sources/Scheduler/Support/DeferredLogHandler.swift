import Logging

/// swift-log's `StreamLogHandler`, with its metadata rendered only when a
/// line is written.
///
/// `StreamLogHandler` re-renders its metadata text on every change to it.
/// Hummingbird sets a request id on each request's logger, so every request
/// paid for a rendering even when nothing was logged: 3 % of the daemon's
/// CPU under `POST /tasks/generate` load. This handler keeps the metadata as
/// a dictionary and hands it to a `StreamLogHandler` per written line, so
/// the lines are exactly `StreamLogHandler`'s (the seed's log lines are part
/// of the compatibility baseline).
public struct DeferredLogHandler: LogHandler {
    private var writer: StreamLogHandler

    /// The metadata attached to every line of this logger.
    public var metadata: Logger.Metadata = [:]

    /// Lines below this level are dropped.
    public var logLevel: Logger.Level {
        get { writer.logLevel }
        set { writer.logLevel = newValue }
    }

    /// Metadata added to every line by a provider (task-local context).
    public var metadataProvider: Logger.MetadataProvider? {
        get { writer.metadataProvider }
        set { writer.metadataProvider = newValue }
    }

    /// Writes through `writer` (whose own metadata is replaced per line).
    public init(_ writer: StreamLogHandler) {
        self.writer = writer
        self.metadata = writer.metadata
        self.writer.metadata = [:]
    }

    /// Writes to standard error, as `StreamLogHandler.standardError` does.
    public static func standardError(label: String) -> DeferredLogHandler {
        DeferredLogHandler(StreamLogHandler.standardError(label: label))
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = writer
        if !metadata.isEmpty { line.metadata = metadata }
        line.log(event: event)
    }
}
