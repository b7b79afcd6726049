/// What one lease is for: a partition, and (later, key lanes) one lane of
/// it. Every rule of the rotation state speaks of slots, not partitions, so
/// a partition split into lanes needs no new rules: lane 0 is the whole
/// partition.
struct SlotKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The partition the slot reads.
    var partition: TopicPartition
    /// The lane within the partition (0: the whole partition).
    var lane: Int

    init(_ partition: TopicPartition, lane: Int = 0) {
        self.partition = partition
        self.lane = lane
    }

    var topic: String { partition.topic }

    static func < (lhs: SlotKey, rhs: SlotKey) -> Bool {
        (lhs.partition, lhs.lane) < (rhs.partition, rhs.lane)
    }

    var description: String { lane == 0 ? partition.description : "\(partition)#\(lane)" }
}

/// The rotation state's view of one slot assigned to this process.
struct RotationSlot: Equatable, Sendable {
    /// Worker index holding the slot's current lease (after a handoff grant:
    /// the successor, while the predecessor finishes its message).
    var holder: Int?
    /// When the previous lease on it ended.
    var lastEnd: ContinuousClock.Instant?
    /// A rebalance is taking it away: nothing may be granted or renewed on it.
    var revoked = false
}

/// A lease as the rotation state knows it (the worker side is `Lease`).
struct LeaseRecord: Equatable, Sendable {
    let id: UInt64
    let worker: Int
    let slot: SlotKey
    var sliceMs: Int
    let grantedAt: ContinuousClock.Instant
    /// The lease this one takes the slot over from (make-before-break).
    let handoffFrom: UInt64?
    /// The stop asked of it, if any: such a lease is neither renewed nor handed on.
    var stopReason: SliceEndReason?
    /// Its successor has reported, so it has let go of the slot (its own
    /// final report may still be on its way).
    var released = false
}

/// A grant decided by the rotation state: the shell starts the lease.
struct LeaseGrant: Equatable, Sendable {
    let id: UInt64
    let worker: Int
    let slot: SlotKey
    let sliceMs: Int
    /// The lease the new one takes over from (its holder lets go once the
    /// new worker runs), or nil for a free slot.
    let handoffFrom: UInt64?
}

/// A position to commit.
struct SlotOffset: Equatable, Sendable {
    let slot: SlotKey
    let offset: Int64
}
