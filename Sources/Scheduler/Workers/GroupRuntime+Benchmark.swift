/// What `task-scheduler-bench` reads from a running group: positions from the
/// partition feeds' atomics (no hop onto the coordinator's thread while it
/// times a run) and the coordinator's totals once the run is over.
@_spi(Benchmark) extension GroupRuntime {
    /// The positions of the partitions assigned when it was taken.
    public struct PositionProbe: Sendable {
        let feeds: [PartitionFeed]
        /// Partitions assigned.
        public var partitions: Int { feeds.count }
        /// Messages processed, summed over the partitions (from offset 0).
        public var processed: Int64 { feeds.reduce(0) { $0 + max(0, $1.nextOffset) } }
        /// Messages processed with every emit acknowledged (what may be committed).
        public var committable: Int64 { feeds.reduce(0) { $0 + max(0, $1.committableOffset) } }
    }

    /// The coordinator's figures for the run.
    public struct Totals: Sendable {
        /// Recent handoff gaps (up to the recorder's capacity).
        public var gaps: [Duration]
        /// Handoffs counted.
        public var handoffs: Int
        /// Slices worked.
        public var slices: Int
        /// Time the workers spent handling messages.
        public var busy: Duration
    }

    /// Takes a probe over the partitions assigned now.
    public func positionProbe() async throws -> PositionProbe {
        PositionProbe(feeds: try await coordinator.inspect { Array($0.feeds.values) })
    }

    /// The coordinator's totals so far.
    public func totals() async throws -> Totals {
        try await coordinator.inspect {
            Totals(gaps: $0.gaps.recentDurations, handoffs: $0.gaps.count,
                   slices: $0.activity.reduce(0) { $0 + $1.slices },
                   busy: $0.activity.reduce(Duration.zero) { $0 + $1.busy })
        }
    }
}
