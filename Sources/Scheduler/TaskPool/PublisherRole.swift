/// Whether this daemon publishes the task pool, as the election consumer
/// last heard, and what the generator is doing with it. Shared (in a
/// `WatchedValue`) by the election thread and the generator.
struct PublisherRole: Sendable, Equatable {
    /// This daemon holds the pool topic's partition in the publishers' group.
    private(set) var isPublisher = false
    /// Counts the elections: a tick is run only in the term it was planned in
    /// (a daemon that lost the role and got it back within one interval
    /// plans again from the topic, where another may have ticked meanwhile).
    private(set) var term = 0
    /// Where the pool topic ended when this daemon was elected: the
    /// previous publisher's records are all below it.
    private(set) var electedAtEnd: Int64 = 0
    /// A tick is publishing (a revoke waits for it to finish).
    private(set) var ticking = false
    /// Ticks this daemon published, redid at a takeover, and skipped (its
    /// tick record could not be written).
    private(set) var published = 0
    private(set) var doubled = 0
    private(set) var skipped = 0

    /// The group gave this daemon the pool topic's partition; the topic ended at `end`.
    mutating func elect(end: Int64) {
        isPublisher = true
        term += 1
        electedAtEnd = end
    }

    /// The partition was revoked or lost.
    mutating func resign() {
        isPublisher = false
    }

    /// Starts a tick planned in `term`; false (run nothing) when this
    /// daemon is no longer the publisher of that term.
    mutating func beginTick(term planned: Int) -> Bool {
        guard isPublisher && term == planned else { return false }
        ticking = true
        return true
    }

    /// The tick started by `beginTick` ended with `outcome`.
    mutating func endTick(_ outcome: TickOutcome) {
        ticking = false
        switch outcome {
        case .published: published += 1
        case .skipped: skipped += 1
        }
    }

    /// A takeover redoes a tick the previous publisher did not finish.
    mutating func redo() {
        doubled += 1
    }
}

/// How a tick of this daemon ended.
enum TickOutcome: String, Sendable {
    /// Its tick records were written and `generate()`'s tasks published (or tried).
    case published
    /// Nothing was published: the tick record before it could not be written.
    case skipped
}
