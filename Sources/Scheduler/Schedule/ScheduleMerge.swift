/// How a record read back for a schedule the owner holds combines with what
/// it holds. Two kinds of writers share a schedule's records: the API and
/// scripts (on any daemon) change its definition and bump its `revision`;
/// the owner writes its state after each fire under the revision it holds.
/// An API writer starts from what it knew (its catalog may be a fire
/// behind), and an owner's state may land after a newer definition, so:
///
/// - a higher revision is the newer definition: it is taken, keeping the
///   owner's state when the owner got further (more fires): `.merged`, to be
///   written back so the topic's last record holds both;
/// - the same revision is a state: taken when it got further (the owner's
///   own state read back, or a previous owner's), else ignored;
/// - a lower revision with more progress is a fire's state written under
///   the older definition: its state is kept under the held definition
///   (`.merged`); without more progress it is older and ignored.
enum ScheduleMerge {
    enum Result: Sendable, Equatable {
        case ignore
        case replace(Schedule)
        /// Combined: write it back.
        case merged(Schedule)
    }

    static func apply(held: Schedule, incoming: Schedule) -> Result {
        let (heldRevision, incomingRevision) = (held.revision ?? 0, incoming.revision ?? 0)
        if incomingRevision > heldRevision {
            guard held.progress > incoming.progress || (held.triggered ?? 0) > (incoming.triggered ?? 0) else {
                return .replace(incoming)
            }
            var merged = incoming
            merged.takeState(of: held)
            return merged == incoming ? .replace(incoming) : .merged(merged)
        }
        if incomingRevision == heldRevision {
            guard incoming != held, incoming.progress >= held.progress else { return .ignore }
            return .replace(incoming)
        }
        guard incoming.progress > held.progress else { return .ignore }
        var merged = held
        merged.takeState(of: incoming)
        return .merged(merged)
    }
}

extension Schedule {
    /// Takes the owner's state from `other` (which got further): fires,
    /// misses, triggers fired, the last fire; the next due time moves past a
    /// slot `other` fired already.
    mutating func takeState(of other: Schedule) {
        if other.progress > progress {
            fires = other.fires
            misses = other.misses
            lastFiredDueMs = other.lastFiredDueMs
            lastFiredAtMs = other.lastFiredAtMs
            lastFireDelayMs = other.lastFireDelayMs
            if kind == other.kind { nextDueMs = max(nextDueMs, other.nextDueMs) }
        }
        let fired = max(triggered ?? 0, other.triggered ?? 0)
        triggered = fired == 0 ? nil : fired
        if !triggerPending { triggerAtMs = nil }
        if kind.isRecurring, let last = lastFiredDueMs, nextDueMs <= last, let next = kind.nextDue(after: last, now: last) {
            nextDueMs = next
        }
    }
}
