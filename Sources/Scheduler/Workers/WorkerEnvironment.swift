import Logging

/// What every worker of a group shares.
struct WorkerEnvironment: Sendable {
    let group: GroupConfig
    let publisher: TaskPublisher
    let consumer: KafkaConsumer
    let catalog: ScriptCatalog
    /// The daemon's metrics (topic counters, emit sinks, lag, handoffs).
    let metrics: SchedulerMetrics
    let logger: Logger
    /// The group's bound on emits in flight.
    let emitBudget: EmitBudget
    /// Closed while the group rebalances: async commits wait.
    let commits: CommitGate
    /// Fetched messages wait on a partition nobody holds: a worker whose
    /// partition ran out lets go after `shortDrainWaitMs`.
    let fetchedElsewhere: FetchedElsewhere

    /// How long a worker waits for a message before it calls its partition
    /// drained and ends the slice early, so idle partitions do not hold workers.
    static let drainWaitMs = 20
    /// The drain wait while fetched messages wait on a partition nobody
    /// holds (`FetchedElsewhere`): the worker is given them instead.
    static let shortDrainWaitMs = 1
    /// One seek attempt of a rewind after a failed emit: a lease asked to
    /// stop (revoke, shutdown) while the broker is unreachable ends within it
    /// (plus one 200 ms pause). Was 5000 per try.
    static let seekTimeoutMs = 1000
    /// How often a slice commits its progress (async), bounding what a crash
    /// or a rebalance makes the next holder process again.
    static let commitInterval = Duration.milliseconds(25)
}
