import Foundation

/// The bound on a group's emits in flight (`[[groups]] max_inflight_emits`
/// and `max_inflight_emit_mb`): a worker whose emits would pass either waits
/// for acknowledgements, so memory stays bounded however slow the broker is.
/// Waiting is back pressure, never a failed attempt.
///
/// Bytes are released when the last emit of a message settles (the message
/// is the unit `OffsetWatermark` tracks), counts per emit.
final class EmitBudget: @unchecked Sendable {
    // Threading rule: `inUse`, `bytesInUse` and the peaks only under `condition`.
    private let condition = NSCondition()
    private var inUse = 0
    private var bytesInUse = 0
    private var highest = 0
    private var highestBytes = 0
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
    /// gets here). Returns false, having taken nothing, if `shouldStop` turns
    /// true first.
    func acquire(_ count: Int, bytes: Int = 0, shouldStop: () -> Bool) -> Bool {
        guard count > 0 else { return true }
        condition.lock()
        defer { condition.unlock() }
        while !Self.fits(count: count, bytes: bytes, inUse: inUse, bytesInUse: bytesInUse, limit: limit, byteLimit: byteLimit) {
            if shouldStop() { return false }
            _ = condition.wait(until: Date(timeIntervalSinceNow: 0.01))
        }
        inUse += count
        bytesInUse += bytes
        highest = max(highest, inUse)
        highestBytes = max(highestBytes, bytesInUse)
        return true
    }

    /// Gives back `count` permits and `bytes` (acknowledged, failed, or never enqueued).
    func release(_ count: Int, bytes: Int = 0) {
        condition.lock()
        inUse -= count
        bytesInUse -= bytes
        condition.broadcast()
        condition.unlock()
    }

    /// The most emits ever in flight at once.
    var peak: Int {
        condition.lock()
        defer { condition.unlock() }
        return highest
    }

    /// The most bytes of emits ever in flight at once.
    var peakBytes: Int {
        condition.lock()
        defer { condition.unlock() }
        return highestBytes
    }

    /// Emits in flight now.
    var current: Int {
        condition.lock()
        defer { condition.unlock() }
        return inUse
    }

    /// Bytes of emits in flight now.
    var currentBytes: Int {
        condition.lock()
        defer { condition.unlock() }
        return bytesInUse
    }
}
