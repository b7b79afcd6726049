import Foundation
import Logging

/// How log lines are written (`[log] format`, `--log-format`).
public enum LogFormat: String, Sendable, CaseIterable {
    /// swift-log's `StreamLogHandler` lines (the default, the seed's).
    case text
    /// One JSON object per line (`JSONLogLine`), for log pipelines.
    case json
}

/// Writes each log line as one JSON object on one line: `timestamp`,
/// `level`, `logger` (the label), `message`, then every metadata key as a
/// field (the logger's, a metadata provider's and the call's, the call's
/// winning), as log pipelines (Loki, Elasticsearch, Vector) read them.
public struct JSONLogHandler: LogHandler {
    private let label: String
    private let output: @Sendable (String) -> Void

    /// The metadata attached to every line of this logger.
    public var metadata: Logger.Metadata = [:]
    /// Lines below this level are dropped.
    public var logLevel: Logger.Level = .info
    /// Metadata added to every line by a provider (task-local context).
    public var metadataProvider: Logger.MetadataProvider?

    /// A handler handing each finished line (newline included) to `write`.
    public init(label: String, write: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.output = write
    }

    /// Writes to standard error, each line whole under one lock, so lines
    /// from threads never interleave.
    public static func standardError(label: String) -> JSONLogHandler {
        JSONLogHandler(label: label) { line in
            standardErrorLock.withLock { _ in writeAll(line, to: STDERR_FILENO) }
        }
    }

    private static let standardErrorLock = LockedValue(())

    /// Writes every byte of `text` to `fd`, through short writes and
    /// interruptions; gives up on other errors (a log line is not worth a hang).
    static func writeAll(_ text: String, to fd: Int32) {
        let bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let written = bytes.withUnsafeBytes { buffer in Glibc.write(fd, buffer.baseAddress! + done, buffer.count - done) }
            if written > 0 {
                done += written
            } else if written < 0 && errno == EINTR {
                continue
            } else {
                return
            }
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty {
            fields.merge(provided) { _, provided in provided }
        }
        if let explicit = event.metadata {
            fields.merge(explicit) { _, explicit in explicit }
        }
        if let error = event.error, fields[LogKey.error] == nil {
            fields[LogKey.error] = "\(error)"
        }
        output(JSONLogLine.render(time: Date(), level: event.level, label: label, message: "\(event.message)", metadata: fields))
    }
}

/// The JSON text of one log line (a plain function of its parts).
public enum JSONLogLine {
    /// The fields every line has, in this order; a metadata key with one of
    /// these names is written as `metadata.<name>` so it cannot hide them.
    public static let fixedFields = ["timestamp", "level", "logger", "message"]

    /// `{"timestamp":"2026-12-05T08:18:53.123Z","level":"info","logger":"…","message":"…",…metadata sorted by key}` and a newline.
    public static func render(time: Date, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata) -> String {
        var out = "{\"timestamp\":\""
        out += timestamp(time)
        out += "\",\"level\":\""
        out += level.rawValue
        out += "\",\"logger\":"
        appendString(label, to: &out)
        out += ",\"message\":"
        appendString(message, to: &out)
        for key in metadata.keys.sorted() {
            out += ","
            appendString(fixedFields.contains(key) ? "metadata.\(key)" : key, to: &out)
            out += ":"
            appendValue(metadata[key]!, to: &out)
        }
        out += "}\n"
        return out
    }

    /// RFC 3339 in UTC with milliseconds.
    static func timestamp(_ time: Date) -> String {
        let interval = time.timeIntervalSince1970
        var seconds = time_t(interval.rounded(.down))
        let millis = min(999, Int((interval - Double(seconds)) * 1000))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func padded(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(padded(parts.tm_year + 1900, 4))-\(padded(parts.tm_mon + 1, 2))-\(padded(parts.tm_mday, 2))T"
            + "\(padded(parts.tm_hour, 2)):\(padded(parts.tm_min, 2)):\(padded(parts.tm_sec, 2)).\(padded(Int32(millis), 3))Z"
    }

    /// Metadata values keep their shape: strings, arrays and objects.
    static func appendValue(_ value: Logger.Metadata.Value, to out: inout String) {
        switch value {
        case .string(let text): appendString(text, to: &out)
        case .stringConvertible(let item): appendString(item.description, to: &out)
        case .array(let items):
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                appendValue(item, to: &out)
            }
            out += "]"
        case .dictionary(let fields):
            out += "{"
            for (index, key) in fields.keys.sorted().enumerated() {
                if index > 0 { out += "," }
                appendString(key, to: &out)
                out += ":"
                appendValue(fields[key]!, to: &out)
            }
            out += "}"
        }
    }

    /// A JSON string literal (RFC 8259 section 7): quotes, backslashes and
    /// every control character escaped, so a line never breaks in two.
    static func appendString(_ text: String, to out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F
                || scalar.value == 0x2028 || scalar.value == 0x2029:
                // DEL and the Unicode line separators too: some readers split lines on them.
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
