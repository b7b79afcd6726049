/// What this daemon knows of the cluster, as a plain value: the latest
/// report of every daemon it heard of, and the rules that say which are
/// live, which are gone, which are forgotten, and who owns a schedule partition.
struct ClusterTable: Sendable {
    /// A daemon's latest report and when it was last heard of.
    struct Known: Sendable, Equatable {
        var report: DaemonReport
        /// When the report was made, by this daemon's clock: the earlier of
        /// its own time and the time it arrived, so neither a report read
        /// back from history at start nor a clock ahead of ours looks fresh.
        var seenMs: Int64
    }

    /// A daemon's standing.
    enum Status: String, Sendable, Equatable {
        /// Reporting.
        case live
        /// Stopping gracefully: still holds what it lists.
        case stopping
        /// Stopped (its last report said so) or silent for `silentIntervals` of its intervals.
        case gone
    }

    /// Reports a daemon may miss before it is shown as gone.
    static let silentIntervals: Int64 = 3
    /// Gone daemons are forgotten after this long (ms).
    static let forgetAfterMs: Int64 = 10 * 60 * 1000

    private(set) var daemons: [String: Known] = [:]

    /// Records `report`, received at `receivedMs`; an older report of a daemon (by its own time) is ignored.
    mutating func apply(_ report: DaemonReport, receivedMs: Int64) {
        if let known = daemons[report.id], known.report.at_ms > report.at_ms { return }
        daemons[report.id] = Known(report: report, seenMs: min(receivedMs, report.at_ms))
    }

    /// A tombstone for daemon `id`: forgotten at once.
    mutating func remove(id: String) {
        daemons[id] = nil
    }

    /// The standing of `known` at `nowMs`.
    static func status(_ known: Known, nowMs: Int64) -> Status {
        if known.report.state == "stopped" { return .gone }
        if nowMs - known.seenMs > silentIntervals * Int64(max(known.report.interval_ms, 1)) { return .gone }
        return known.report.state == "stopping" ? .stopping : .live
    }

    /// Why a gone daemon is gone: `stopped` or `silent`; nil for a present one.
    static func goneReason(_ known: Known, nowMs: Int64) -> String? {
        guard status(known, nowMs: nowMs) == .gone else { return nil }
        return known.report.state == "stopped" ? "stopped" : "silent"
    }

    /// Forgets daemons gone for longer than `forgetAfterMs` (so the table
    /// holds what reported in the last minutes, however many daemons came and went).
    mutating func forget(nowMs: Int64) {
        daemons = daemons.filter { nowMs - $0.value.seenMs <= Self.forgetAfterMs || Self.status($0.value, nowMs: nowMs) != .gone }
    }

    /// The daemon owning schedule partition `partition`: among the present
    /// ones listing it, the latest to report it (two list it for a moment
    /// while it moves).
    func owner(ofSchedulePartition partition: Int32, nowMs: Int64) -> String? {
        daemons.values
            .filter { Self.status($0, nowMs: nowMs) != .gone && $0.report.schedule_partitions.contains(partition) }
            .max { $0.report.at_ms < $1.report.at_ms }?.report.id
    }

    /// The owner of every schedule partition among `partitions` that has one.
    func scheduleOwners(_ partitions: [Int32], nowMs: Int64) -> [Int32: String] {
        var owners: [Int32: String] = [:]
        for partition in partitions { owners[partition] = owner(ofSchedulePartition: partition, nowMs: nowMs) }
        return owners
    }

    /// The daemons, present ones first, then by id.
    func sorted(nowMs: Int64) -> [(known: Known, status: Status)] {
        daemons.values.map { ($0, Self.status($0, nowMs: nowMs)) }
            .sorted { ($0.status == .gone ? 1 : 0, $0.known.report.id) < ($1.status == .gone ? 1 : 0, $1.known.report.id) }
    }
}
