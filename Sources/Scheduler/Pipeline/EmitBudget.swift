import Foundation

/// The bound on a group's emits in flight (`[[groups]] max_inflight_emits`
/// and `max_inflight_emit_mb`): a worker whose emits would pass either waits
/// for acknowledgements, so memory stays bounded however slow the broker is.
/// Waiting is back pressure, never a failed attempt.
///
/// Bytes are released when the last emit of a message settles (the message
/// is the unit `OffsetWatermark` tracks), counts per emit.
final class EmitBudget: Sendable {
    /// What is in flight, and the peaks; a release wakes the workers waiting to emit.
    private struct Usage: Sendable {
        var inUse = 0
        var bytesInUse = 0
        var highest = 0
        var highestBytes = 0
    }
    private let usage = WatchedValue(Usage())
    /// Emits allowed in flight at once.
    let limit: Int
    /// Bytes of emits allowed in flight at once.
    let byteLimit: Int

    init(limit: Int, byteLimit: Int = .max) {
        self.limit = max(1, limit)
        self.byteLimit = max(1, byteLimit)
    }

    /// Whether `count` emits of `bytes` may go now, with `inUse` emits of
    /// `bytesInUse` in flight: within both bounds, or alone in an empty
    /// pipeline (a message larger than a bound goes through alone: its
    /// emits are bounded by `[scripts] max_call_emit_mb`, each by the
    /// producer's message size). The rule, tested on its own.
    static func fits(count: Int, bytes: Int, inUse: Int, bytesInUse: Int, limit: Int, byteLimit: Int) -> Bool {
        inUse == 0 || (inUse + count <= limit && bytes <= byteLimit - bytesInUse)
    }

    /// Takes `count` permits of `bytes` in all, waiting while the group is at
    /// its limit (a message emitting more than the count limit alone waits
    /// for an empty pipeline; `Worker.emit` refuses such a message before it
    /// gets here). Returns false, having taken nothing, if `stop` is
    /// requested first. Woken by a release or by the stop.
    func acquire(_ count: Int, bytes: Int = 0, stop: StopSignal?) -> Bool {
        guard count > 0 else { return true }
        let fits = { [limit, byteLimit] (usage: Usage) in
            Self.fits(count: count, bytes: bytes, inUse: usage.inUse, bytesInUse: usage.bytesInUse, limit: limit, byteLimit: byteLimit)
        }
        while true {
            let taken = usage.update { usage -> Bool in
                guard fits(usage) else { return false }
                usage.inUse += count
                usage.bytesInUse += bytes
                usage.highest = max(usage.highest, usage.inUse)
                usage.highestBytes = max(usage.highestBytes, usage.bytesInUse)
                return true
            }
            if taken { return true }
            if stop?.isRequested == true { return false }
            _ = usage.waitBlocking(until: .distantFuture, or: stop, fits)
        }
    }

    /// Gives back `count` permits and `bytes` (acknowledged, failed, or never enqueued).
    func release(_ count: Int, bytes: Int = 0) {
        usage.update { usage in
            usage.inUse -= count
            usage.bytesInUse -= bytes
        }
    }

    /// The most emits ever in flight at once.
    var peak: Int { usage.read { $0.highest } }

    /// The most bytes of emits ever in flight at once.
    var peakBytes: Int { usage.read { $0.highestBytes } }

    /// Emits in flight now.
    var current: Int { usage.read { $0.inUse } }

    /// Bytes of emits in flight now.
    var currentBytes: Int { usage.read { $0.bytesInUse } }
}
