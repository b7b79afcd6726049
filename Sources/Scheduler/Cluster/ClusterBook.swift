import Foundation

/// This daemon's view of the cluster, shared by the reporter, the reports
/// follower and the API: the `ClusterTable` behind a lock, who this daemon
/// is, and whether it is stopping.
final class ClusterBook: Sendable {
    let identity: DaemonIdentity
    let intervalMs: Int
    private let table = LockedValue(ClusterTable())
    private let stopping = LockedValue(false)

    init(identity: DaemonIdentity, intervalMs: Int) {
        self.identity = identity
        self.intervalMs = intervalMs
    }

    /// A graceful stop began (reports say `stopping` from now on).
    func markStopping() { stopping.withLock { $0 = true } }
    var isStopping: Bool { stopping.withLock { $0 } }

    /// Records a report (this daemon's own as it writes it, or anyone's as read).
    func apply(_ report: DaemonReport, receivedMs: Int64 = RFC3339.nowMs) {
        table.withLock { table in
            table.apply(report, receivedMs: receivedMs)
            table.forget(nowMs: receivedMs)
        }
    }

    /// A tombstone for daemon `id`.
    func remove(id: String) { table.withLock { $0.remove(id: id) } }

    /// The owners of the schedule partitions among `partitions`.
    func scheduleOwners(_ partitions: [Int32]) -> [Int32: String] {
        let now = RFC3339.nowMs
        return table.withLock { $0.scheduleOwners(partitions, nowMs: now) }
    }

    /// The body of `GET /cluster`.
    func view() -> ClusterView {
        let now = RFC3339.nowMs
        let daemons = table.withLock { $0.sorted(nowMs: now) }.map { known, status in
            DaemonView(id: known.report.id, status: status.rawValue, gone_because: ClusterTable.goneReason(known, nowMs: now),
                       last_report: RFC3339.format(known.seenMs), last_report_ms_ago: max(0, now - known.seenMs),
                       is_self: known.report.id == identity.id, report: known.report)
        }
        return ClusterView(self_id: identity.id, live: daemons.filter { $0.status != ClusterTable.Status.gone.rawValue }.count,
                           gone_after_ms: ClusterTable.silentIntervals * Int64(intervalMs), daemons: daemons)
    }
}

/// Body of `GET /cluster`.
struct ClusterView: Codable, Sendable {
    /// The answering daemon's id.
    let self_id: String
    /// Daemons live or stopping.
    let live: Int
    /// How long this daemon's silence would take to show it as gone (three intervals).
    let gone_after_ms: Int64
    /// Every daemon heard of in the last ten minutes, present ones first.
    let daemons: [DaemonView]
}

/// One daemon in `GET /cluster`.
struct DaemonView: Codable, Sendable {
    let id: String
    /// `live`, `stopping` or `gone`.
    let status: String
    /// For a gone daemon: `stopped` (it said so) or `silent` (no report for three intervals).
    let gone_because: String?
    /// When its latest report was made (RFC 3339), and how long ago.
    let last_report: String
    let last_report_ms_ago: Int64
    let is_self: Bool
    /// Its latest report.
    let report: DaemonReport
}
