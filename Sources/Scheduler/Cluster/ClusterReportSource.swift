import Foundation

/// Gathers what a report says from the daemon's parts: the groups' views
/// (the same as `GET /groups`), the schedule partitions held, the scripts,
/// and rates from the metrics over the last few seconds.
struct ClusterReportSource: Sendable {
    let identity: DaemonIdentity
    let intervalMs: Int
    let groups: [GroupRuntime]
    let schedules: ScheduleStore
    let catalog: ScriptCatalog
    let metrics: SchedulerMetrics
    /// Whether this daemon publishes the task pool. False until pool
    /// publisher election decides otherwise (the hook for it).
    let publishesPool: @Sendable () -> Bool
    let rates = LockedValue(RateWindow(spanMs: 10_000))
    /// Where the HTTP API listens, set once it does.
    let api = LockedValue<String?>(nil)

    func report(state: String) async -> DaemonReport {
        var groupReports: [GroupReport] = []
        // Bounded: a group that stopped answers no more (its coordinator
        // thread is gone); a stopped daemon holds nothing.
        for group in groups where state != "stopped" {
            if let view = await group.coordinator.inspect(within: .milliseconds(500), { $0.snapshot() }) {
                groupReports.append(GroupReport(view))
            }
        }
        let now = RFC3339.nowMs
        let text = metrics.render()
        let counts = (PrometheusText.sum(MetricName.processed, in: text), PrometheusText.sum(MetricName.published, in: text))
        let rates = rates.withLock { window in
            window.add(RateWindow.Sample(ms: now, processed: counts.0, published: counts.1))
            return window.rates
        }
        let ownership = schedules.ownership
        let (partitions, owned) = (ownership.partitions, ownership.count)
        let scripts = catalog.view()
        return DaemonReport(
            id: identity.id, host: identity.host, pid: identity.pid, version: DaemonIdentity.version, api: api.withLock { $0 }, state: state,
            started_at: RFC3339.format(identity.startedMs), at: RFC3339.format(now), at_ms: now,
            uptime_ms: now - identity.startedMs, interval_ms: intervalMs, groups: groupReports,
            schedule_partitions: state == "stopped" ? [] : partitions, schedules_owned: state == "stopped" ? 0 : owned,
            publishes_pool: publishesPool(), rates: rates,
            scripts: scripts.scripts.map { ScriptVersionReport(name: $0.name, version: $0.version) },
            last_reload: scripts.last_reload.map { ReloadReport(at: $0.at, result: $0.result) })
    }
}

/// Counter samples over a sliding span, and the rates they give: over the
/// whole span that has samples, so a fresh daemon shows a rate from its
/// second sample on and a quiet second does not read as zero throughput.
struct RateWindow: Sendable, Equatable {
    struct Sample: Sendable, Equatable {
        let ms: Int64
        let processed: Double
        let published: Double
    }

    let spanMs: Int64
    private(set) var samples: [Sample] = []

    init(spanMs: Int64) {
        self.spanMs = spanMs
    }

    /// Adds a sample and drops those older than the span (keeping one at or before its start).
    mutating func add(_ sample: Sample) {
        samples.append(sample)
        while samples.count > 2, samples[1].ms <= sample.ms - spanMs { samples.removeFirst() }
    }

    /// Per-second rates between the oldest and newest sample kept.
    var rates: RatesReport {
        guard let first = samples.first, let last = samples.last, last.ms > first.ms else {
            return RatesReport(processed_per_s: 0, published_per_s: 0, window_ms: 0)
        }
        let seconds = Double(last.ms - first.ms) / 1000
        return RatesReport(processed_per_s: ((last.processed - first.processed) / seconds * 10).rounded() / 10,
                           published_per_s: ((last.published - first.published) / seconds * 10).rounded() / 10,
                           window_ms: last.ms - first.ms)
    }
}

/// Reading Prometheus text.
enum PrometheusText {
    /// The sum of every series of `name` in `text`.
    static func sum(_ name: String, in text: String) -> Double {
        var total = 0.0
        for line in text.split(separator: "\n") where line.hasPrefix(name + "{") || line.hasPrefix(name + " ") {
            total += Double(line.split(separator: " ").last ?? "") ?? 0
        }
        return total
    }
}
