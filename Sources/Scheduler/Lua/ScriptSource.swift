import Foundation

/// One version of a script: its text and a content hash, read once and then
/// used for every Lua state created from it (so every worker runs exactly
/// the version that was validated).
public struct ScriptSource: Sendable, Equatable {
    /// File name, e.g. `process.lua`.
    public let name: String
    /// Path it was read from.
    public let path: String
    /// The script's bytes.
    public let bytes: [UInt8]
    /// Content hash (64-bit FNV-1a, hex): changes when the text changes.
    public let version: String

    /// Creates a source from text (for tests and validation).
    public init(name: String, path: String, bytes: [UInt8]) {
        self.name = name
        self.path = path
        self.bytes = bytes
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        self.version = String(hash, radix: 16)
    }

    /// Reads `path`; throws `LuaError` naming the file if it is missing or unreadable.
    public static func read(path: String) throws -> ScriptSource {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LuaError(script: path, line: nil, message: FileManager.default.fileExists(atPath: path)
                ? "cannot read the script" : "script file not found")
        }
        return ScriptSource(name: URL(fileURLWithPath: path).lastPathComponent, path: path, bytes: Array(data))
    }
}

/// What one Lua state and one call into it may use (`[scripts]`).
public struct LuaLimits: Sendable, Equatable {
    /// VM instructions per call.
    public var maxInstructions: Int
    /// Bytes one state may allocate.
    public var maxMemoryBytes: Int
    /// Wall-clock milliseconds per call.
    public var maxCallMs: Int
    /// Tasks and schedule records per call (`max_call_emits`).
    public var maxCallEmits: Int
    /// Bytes handed to the daemon per call (`max_call_emit_mb`).
    public var maxCallEmitBytes: Int

    /// Limits from the configuration.
    public init(_ section: ScriptsSection) {
        self.maxInstructions = section.maxInstructions
        self.maxMemoryBytes = section.maxMemoryMB * 1024 * 1024
        self.maxCallMs = section.maxCallMs
        self.maxCallEmits = section.maxCallEmits
        self.maxCallEmitBytes = section.maxCallEmitMB * 1024 * 1024
    }

    /// The defaults of `[scripts]`.
    public static let standard = LuaLimits(ScriptsSection())
}
