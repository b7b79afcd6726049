/// What one Lua call has handed to the daemon so far, against `[scripts]
/// max_call_emits` and `max_call_emit_mb`.
///
/// Every task, schedule record and log line a script makes is copied out of
/// the Lua state into Swift memory that `max_memory_mb` does not count, and
/// is held at least until the call ends. Without this bound a loop of
/// `scheduler.emit(t, s)` with a large `s` grows the daemon until the kernel
/// kills it (a 100 kB string: ~350 MB/s). A value type: the rules, tested on
/// their own (`CallOutputTests`); `ScriptBindings` applies them.
struct CallOutput: Sendable, Equatable {
    /// Tasks and schedule records allowed per call.
    let maxItems: Int
    /// Bytes allowed per call.
    let maxBytes: Int
    /// Counted in the call so far.
    private(set) var items = 0
    private(set) var bytes = 0
    /// Why the call went over, once it did; stays until `reset()`, so a
    /// script that catches the error with `pcall` cannot go on emitting.
    private(set) var breach: String?

    init(maxItems: Int, maxBytes: Int) {
        self.maxItems = maxItems
        self.maxBytes = maxBytes
    }

    init(_ limits: LuaLimits) {
        self.init(maxItems: limits.maxCallEmits, maxBytes: limits.maxCallEmitBytes)
    }

    /// Starts a new call.
    mutating func reset() {
        items = 0
        bytes = 0
        breach = nil
    }

    /// Counts `items` items of `bytes` bytes made by `function` (e.g.
    /// `scheduler.emit`), before they are copied; false (nothing counted,
    /// `breach` set) when the call would go over, or already went over.
    mutating func charge(items newItems: Int = 1, bytes newBytes: Int, by function: String) -> Bool {
        guard breach == nil else { return false }
        if items + newItems > maxItems {
            breach = "\(function): more than \(maxItems) tasks or schedule records in one call ([scripts] max_call_emits)"
            return false
        }
        if newBytes > maxBytes - bytes {
            breach = "\(function): more than \(Self.size(maxBytes)) handed over in one call ([scripts] max_call_emit_mb)"
            return false
        }
        items += newItems
        bytes += newBytes
        return true
    }

    /// `bytes` in MiB when whole, else in bytes.
    static func size(_ bytes: Int) -> String {
        bytes % (1024 * 1024) == 0 ? "\(bytes / 1024 / 1024) MiB" : "\(bytes) bytes"
    }
}

extension OutgoingMessage {
    /// What this message holds in memory, as `CallOutput` counts it.
    var heldBytes: Int {
        topic.utf8.count + (key?.count ?? 0) + value.count
            + headers.reduce(0) { $0 + $1.name.utf8.count + ($1.value?.count ?? 0) }
    }
}
