/// Facts the rotation state asks of the world it does not own: whether a
/// slot has messages waiting (and whether they are fetched already), and its
/// commit position. The coordinator reads them from the partition feeds;
/// unit tests from a table.
protocol RotationFacts {
    /// Messages waiting on `slot` (fetched, on the broker past the next
    /// offset, or to be read again after a failed emit).
    func hasWork(_ slot: SlotKey) -> Bool
    /// Messages of `slot` already fetched and waiting in this process: a new
    /// holder starts on them at once instead of waiting for the broker.
    func hasFetched(_ slot: SlotKey) -> Bool
    /// The offset a commit would send now (processed, emits acknowledged;
    /// negative: nothing yet) and the last one sent.
    func commitPosition(_ slot: SlotKey) -> (committable: Int64, committed: Int64)
}

/// Who is asked at a slice boundary (or after a lease ran dry).
struct RotationQuestion: Equatable, Sendable {
    let lease: UInt64
    let worker: Int
    let slot: SlotKey
    let reason: SliceEndReason
    /// The lease has ended (it ran dry) rather than going on in overtime.
    let final: Bool
}

/// A policy's answer, as read from `rotate(ctx)`: not yet checked against
/// the state (the state validates it; see `RotationState.validate`).
enum PolicyAnswer: Equatable, Sendable {
    /// `nil`, or no policy: the default policy applies.
    case useDefault
    /// Not an answer at all (wrong type, an error): logged, the default applies.
    case invalid(String)
    /// `{worker=, topic=?, partition=?, slice_ms=?, lane=?}`.
    case pick(worker: String, topic: String? = nil, partition: Int64? = nil, sliceMs: Int64? = nil, lane: Int64? = nil)
}

/// `rotate.lua`, or a table in a unit test: asked at every slice boundary
/// (and after a lease ran dry) who continues. It sees a copy of the state.
protocol RotationPolicy {
    func answer(_ question: RotationQuestion, in state: RotationState) -> PolicyAnswer
}

/// A policy given as a closure.
struct ClosurePolicy: RotationPolicy {
    let body: (RotationQuestion, RotationState) -> PolicyAnswer
    func answer(_ question: RotationQuestion, in state: RotationState) -> PolicyAnswer { body(question, state) }
}

/// No `rotate.lua`: the default policy always.
struct DefaultPolicy: RotationPolicy {
    func answer(_ question: RotationQuestion, in state: RotationState) -> PolicyAnswer { .useDefault }
}

/// A validated choice: who takes which slot for how long.
struct RotationChoice: Equatable, Sendable {
    var worker: Int
    var slot: SlotKey
    var sliceMs: Int
}

/// The rules' parameters.
struct RotationRules: Sendable {
    /// Group name (for messages).
    var group: String
    /// Topics in turn order.
    var topics: [String]
    /// Worker ids, by index.
    var workers: [String]
    /// Default slice length.
    var sliceMs: Int
    /// The group uses an incremental (cooperative) assignor: after giving
    /// partitions up the member rejoins for another round at once, and
    /// commits wait for that round's assignment.
    var cooperative = false
    /// A rebalance (held commits, paused leases) with no assignment after it
    /// is over after this long.
    var pauseGiveUp = Duration.seconds(15)
    /// Cooperative: leases go on while commits are held for a rebalance, but
    /// only this long (a fifth of the session timeout); then they pause too,
    /// so what a lost assignment would make the next owner redo stays bounded.
    var holdBeforePause = Duration.seconds(2)
    /// Idle slots' positions are committed at most this often.
    var commitRetryInterval = Duration.seconds(1)
    /// Largest slice a policy may ask for.
    static let maxSliceMs: Int64 = 86_400_000
}
