/// One group in `GET /groups`.
public struct GroupView: Codable, Sendable {
    /// Consumer group id.
    public var name: String
    /// Configured topics, in turn order.
    public var topics: [String]
    /// The topic the default policy currently works on.
    public var current_topic: String?
    /// Configured slice length.
    public var slice_ms: Int
    /// Every worker of the pool.
    public var workers: [WorkerView]
    /// Every partition of the group's topics assigned to this process.
    public var partitions: [PartitionView]
    /// Handoff gaps: end of one lease to the first message of the next.
    public var handoff: HandoffView
    /// Slices of the last minute, for the dashboard's timeline.
    public var recent_leases: [LeaseSpanView]
    /// Tasks emitted by `process()` waiting for the broker's acknowledgement now.
    public var emits_in_flight: Int
    /// The most that were ever in flight at once (at most `max_inflight_emits`).
    public var emits_in_flight_peak: Int
    /// `[[groups]] max_inflight_emits`.
    public var max_inflight_emits: Int
}

/// One slice in `GET /groups` `recent_leases`.
public struct LeaseSpanView: Codable, Sendable {
    public var worker: String
    public var topic: String
    public var partition: Int32
    /// When it began, in milliseconds before now.
    public var start_ms_ago: Int
    /// When it ended, in milliseconds before now.
    public var end_ms_ago: Int
}

/// One worker in `GET /groups`.
public struct WorkerView: Codable, Sendable {
    /// `<group>-<n>`.
    public var id: String
    /// `idle` or `busy`.
    public var state: String
    /// The lease held now, if any.
    public var lease: LeaseView?
    /// Messages processed (completed slices).
    public var messages: Int
    /// Failed `process()` attempts.
    public var errors: Int
    /// Messages sent to the dead-letter topic.
    public var dead_lettered: Int
    /// Time spent in `process()`.
    public var busy_ms: Int
    /// Slices completed.
    public var slices: Int
}

/// A lease in `GET /groups`.
public struct LeaseView: Codable, Sendable {
    /// Topic.
    public var topic: String
    /// Partition.
    public var partition: Int32
    /// Key lane of the partition (0 with `lanes = 1`).
    public var lane: Int
    /// How long it has been held.
    public var held_ms: Int
}

/// One key lane of a partition in `GET /groups`.
public struct LaneView: Codable, Sendable {
    /// Lane number (0 ..< `[[groups]] lanes`).
    public var lane: Int
    /// Worker holding the lane now, if any.
    public var holder: String?
    /// The lane's next message to process (-1: not known yet).
    public var next_offset: Int64
    /// Messages split into the lane and not processed yet.
    public var lag: Int
}

/// One partition in `GET /groups`.
public struct PartitionView: Codable, Sendable {
    /// Topic.
    public var topic: String
    /// Partition id.
    public var partition: Int32
    /// Worker holding it (its lane 0) now, if any.
    public var holder: String?
    /// Last committed offset (-1: none yet from this process).
    public var committed: Int64
    /// Lowest offset not processed yet in any lane (-1: not known yet).
    public var next_offset: Int64
    /// Offset the next commit sends: below it every message was processed and
    /// every task it emitted acknowledged (-1: not known yet).
    public var committable: Int64
    /// Messages waiting.
    public var lag: Int64
    /// The partition's key lanes (one with `lanes = 1`).
    public var lanes: [LaneView]
    /// How far reading the partition is ahead of `next_offset`; reading
    /// stops at `[[groups]] lane_max_ahead`.
    public var ahead: Int64
}

/// Handoff gap figures in `GET /groups`.
public struct HandoffView: Codable, Sendable {
    /// Gaps measured since start.
    public var count: Int
    /// Median of the recent gaps.
    public var p50_ms: Double?
    /// 99th percentile of the recent gaps.
    public var p99_ms: Double?
    /// The last few gaps, newest last.
    public var last_ms: [Double]
}
