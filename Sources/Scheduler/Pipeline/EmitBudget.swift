import Foundation

/// The bound on a group's emits in flight (`[[groups]] max_inflight_emits`):
/// a worker whose emits would pass it waits for acknowledgements, so memory
/// stays bounded however slow the broker is. Waiting is back pressure, never
/// a failed attempt.
final class EmitBudget: @unchecked Sendable {
    // Threading rule: `inUse` only under `condition`.
    private let condition = NSCondition()
    private var inUse = 0
    private var highest = 0
    /// Emits allowed in flight at once.
    let limit: Int

    init(limit: Int) {
        self.limit = max(1, limit)
    }

    /// Takes `count` permits, waiting while the group is at its limit (a
    /// message emitting more than the limit alone waits for an empty pipeline;
    /// `Worker.emit` refuses such a message before it gets here).
    /// Returns false, having taken nothing, if `shouldStop` turns true first.
    func acquire(_ count: Int, shouldStop: () -> Bool) -> Bool {
        guard count > 0 else { return true }
        condition.lock()
        defer { condition.unlock() }
        while inUse > 0 && inUse + count > limit {
            if shouldStop() { return false }
            _ = condition.wait(until: Date(timeIntervalSinceNow: 0.01))
        }
        inUse += count
        highest = max(highest, inUse)
        return true
    }

    /// Gives back `count` permits (acknowledged, failed, or never enqueued).
    func release(_ count: Int) {
        condition.lock()
        inUse -= count
        condition.broadcast()
        condition.unlock()
    }

    /// The most emits ever in flight at once.
    var peak: Int {
        condition.lock()
        defer { condition.unlock() }
        return highest
    }

    /// Emits in flight now.
    var current: Int {
        condition.lock()
        defer { condition.unlock() }
        return inUse
    }
}
