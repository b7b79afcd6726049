import Foundation

/// One daemon's report of its state, the value of its record in the reports
/// topic (`[cluster] reports_topic`, keyed by `id`), written every
/// `[cluster] report_interval_ms`: what `GET /cluster` lists per daemon.
public struct DaemonReport: Codable, Sendable, Equatable {
    /// `[cluster] name`, or `<host>:<pid>:<start ms>`.
    public var id: String
    public var host: String
    public var pid: Int32
    /// The scheduler's version.
    public var version: String
    /// Where its HTTP API listens (`host:port`, the port bound), once it does.
    public var api: String?
    /// `running`, `stopping` (a graceful stop began: still holding what it
    /// lists) or `stopped` (its last report: it holds nothing any more).
    public var state: String
    /// When the daemon started, RFC 3339.
    public var started_at: String
    /// When this report was made, RFC 3339, and in ms since the epoch.
    public var at: String
    public var at_ms: Int64
    public var uptime_ms: Int64
    /// This daemon's report interval; it counts as gone after three silent ones.
    public var interval_ms: Int
    /// The consumer groups it runs, with what it holds in each.
    public var groups: [GroupReport]
    /// Partitions of the schedule topic it holds (it fires their schedules).
    public var schedule_partitions: [Int32]
    /// Schedules in those partitions.
    public var schedules_owned: Int
    /// Whether it publishes the task pool (runs `generate()` ticks).
    public var publishes_pool: Bool
    /// Messages processed and tasks published per second, over the last few seconds.
    public var rates: RatesReport
    /// Scripts in force: name and version (content hash).
    public var scripts: [ScriptVersionReport]
    /// The last script reload: when and `ok` / `failed`.
    public var last_reload: ReloadReport?
}

/// What a daemon holds in one group.
public struct GroupReport: Codable, Sendable, Equatable {
    public var name: String
    public var workers: Int
    public var busy_workers: Int
    /// Messages waiting in the partitions it holds.
    public var lag: Int64
    public var partitions: [PartitionReport]
}

/// One partition a daemon holds.
public struct PartitionReport: Codable, Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    /// Lanes held by a worker right now, of `lanes`.
    public var lanes_held: Int
    public var lanes: Int
    public var lag: Int64
    /// Last committed offset (-1: none yet from this daemon).
    public var committed: Int64
}

/// Rates over the last few seconds (per second).
public struct RatesReport: Codable, Sendable, Equatable {
    public var processed_per_s: Double
    public var published_per_s: Double
    /// The span the rates are measured over (ms; 0 before a second sample).
    public var window_ms: Int64
}

/// A script in force.
public struct ScriptVersionReport: Codable, Sendable, Equatable {
    public var name: String
    public var version: String
}

/// The last reload.
public struct ReloadReport: Codable, Sendable, Equatable {
    public var at: String
    public var result: String
}

/// Who this daemon is in the reports.
struct DaemonIdentity: Sendable {
    /// The scheduler's version, as reports carry it.
    static let version = "0.22.0"

    let id: String
    let host: String
    let pid: Int32
    let startedMs: Int64

    /// `name` when set, else `<host>:<pid>:<start ms>` (new at every start).
    init(name: String, host: String = ProcessInfo.processInfo.hostName, pid: Int32 = ProcessInfo.processInfo.processIdentifier,
         startedMs: Int64 = RFC3339.nowMs) {
        self.host = host
        self.pid = pid
        self.startedMs = startedMs
        self.id = name.isEmpty ? "\(host):\(pid):\(startedMs)" : name
    }
}

extension GroupReport {
    /// The part of `GET /groups`' view of one group a report carries.
    init(_ view: GroupView) {
        name = view.name
        workers = view.workers.count
        busy_workers = view.workers.filter { $0.lease != nil }.count
        partitions = view.partitions.map { partition in
            PartitionReport(topic: partition.topic, partition: partition.partition,
                            lanes_held: partition.lanes.filter { $0.holder != nil }.count, lanes: partition.lanes.count,
                            lag: partition.lag, committed: partition.committed)
        }
        lag = partitions.reduce(0) { $0 + max(0, $1.lag) }
    }
}
