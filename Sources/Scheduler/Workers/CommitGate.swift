import Synchronization

/// Whether the group's offset commits may go out now. Closed while the group
/// rebalances (a commit was refused for it): librdkafka takes a commit
/// answered "illegal generation" (sent with the generation a rebalance has
/// just replaced) as the loss of every partition, so commits wait for the
/// next assignment instead. Positions are kept and sent when it opens.
final class CommitGate: Sendable {
    // An atomic, not a lock: every worker reads it at each commit (several
    // a second each), and it is one flag with nothing to keep consistent
    // beside it.
    private let closed = Atomic<Bool>(false)

    /// Commits may go out.
    var isOpen: Bool { !closed.load(ordering: .acquiring) }

    /// Closes (`hold`) or opens the gate (the rotation state's `.holdCommits`).
    func hold(_ hold: Bool) { closed.store(hold, ordering: .releasing) }
}
