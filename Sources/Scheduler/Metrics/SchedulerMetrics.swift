import CoreMetrics
import Prometheus
import Synchronization

/// The daemon's metrics, served at `GET /metrics` in Prometheus text format.
///
/// One registry per application (tests run several in one process), used
/// through swift-metrics' types with swift-prometheus' factory. Handles are
/// cached, and the per-message figures reach them in batches (per slice), so
/// the message path takes no lock for metrics.
public final class SchedulerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    private let counters = HandleCache<String, CoreMetrics.Counter>()
    private let gauges = HandleCache<String, CoreMetrics.Gauge>()
    private let timers = HandleCache<String, CoreMetrics.Timer>()
    private let floatingCounters = HandleCache<String, CoreMetrics.FloatingPointCounter>()
    let luaCalls = LuaCallHistogram()

    /// Creates an empty registry.
    public init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = [
            "scheduler_handoff_gap_seconds": [
                .microseconds(10), .microseconds(50), .microseconds(100), .microseconds(500), .milliseconds(1),
                .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(100), .seconds(1),
            ],
            "scheduler_schedule_fire_delay_seconds": [
                .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                .milliseconds(100), .milliseconds(250), .seconds(1), .seconds(5), .seconds(60),
            ],
            "scheduler_http_request_duration_seconds": [
                .microseconds(100), .microseconds(500), .milliseconds(1), .milliseconds(5), .milliseconds(10),
                .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5),
            ],
        ]
        self.factory = factory
    }

    private static func key(_ name: String, _ labels: [(String, String)]) -> String {
        ([name] + labels.map { "\($0.0)=\($0.1)" }).joined(separator: "\u{0}")
    }

    /// The handle `name{labels}` from `cache`, made once by `make`.
    private func cached<Handle>(_ cache: HandleCache<String, Handle>, _ name: String, _ labels: [(String, String)],
                                _ make: () -> Handle) -> Handle {
        cache.value(for: Self.key(name, labels), make: make)
    }

    /// The counter `name{labels}` (created once, then cached).
    func counter(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Counter {
        cached(counters, name, labels) { CoreMetrics.Counter(label: name, dimensions: labels, factory: factory) }
    }

    /// The floating-point counter `name{labels}` (e.g. seconds).
    func floatingCounter(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.FloatingPointCounter {
        cached(floatingCounters, name, labels) { CoreMetrics.FloatingPointCounter(label: name, dimensions: labels, factory: factory) }
    }

    /// The gauge `name{labels}`.
    func gauge(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Gauge {
        cached(gauges, name, labels) { CoreMetrics.Gauge(label: name, dimensions: labels, factory: factory) }
    }

    /// Removes the gauge `name{labels}` from the registry (a partition that
    /// left this daemon: its last value must not be summed with its new
    /// owner's).
    func removeGauge(_ name: String, _ labels: [(String, String)]) {
        gauges.remove(Self.key(name, labels))?.destroy()
    }

    /// The histogram (swift-metrics `Timer`) `name{labels}`, in seconds.
    func timer(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Timer {
        cached(timers, name, labels) { CoreMetrics.Timer(label: name, dimensions: labels, preferredDisplayUnit: .seconds, factory: factory) }
    }

    /// Every family, in Prometheus text format.
    public func render() -> String {
        registry.emitToString() + luaCalls.render()
    }
}

/// Metric names, in one place (the documented contract of `GET /metrics`).
enum MetricName {
    static let processed = "scheduler_messages_processed_total"
    static let failed = "scheduler_messages_failed_total"
    static let deadLettered = "scheduler_messages_dead_lettered_total"
    static let lag = "scheduler_partition_lag"
    static let emitsInFlight = "scheduler_emits_in_flight"
    static let handoffGap = "scheduler_handoff_gap_seconds"
    static let slices = "scheduler_slices_total"
    static let busy = "scheduler_worker_busy_seconds_total"
    static let luaErrors = "scheduler_lua_errors_total"
    static let published = "scheduler_tasks_published_total"
    static let publishErrors = "scheduler_publish_errors_total"
    static let httpRequests = "scheduler_http_requests_total"
    static let httpDuration = "scheduler_http_request_duration_seconds"
    static let reloads = "scheduler_script_reloads_total"
    static let schedules = "scheduler_schedules"
    static let schedulesCreated = "scheduler_schedules_created_total"
    static let scheduleFires = "scheduler_schedule_fires_total"
    static let scheduleFireErrors = "scheduler_schedule_fire_errors_total"
    static let scheduleFireDelay = "scheduler_schedule_fire_delay_seconds"
    static let scheduleMisses = "scheduler_schedule_misses_total"
    /// Pool ticks this daemon ran, by outcome (published, doubled, skipped).
    static let poolTicks = "scheduler_pool_ticks_total"
    /// 1 while this daemon is the task pool's publisher.
    static let poolPublisher = "scheduler_pool_publisher"
}
