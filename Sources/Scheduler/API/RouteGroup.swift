import Hummingbird

/// The routes of one resource (`/tasks`, `/schedules`, ...), registered together.
protocol RouteGroup: Sendable {
    func add(to router: Router<BasicRequestContext>)
}

extension TaskRoutes: RouteGroup {}
extension ScheduleRoutes: RouteGroup {}
extension GroupRoutes: RouteGroup {}
extension ScriptRoutes: RouteGroup {}
extension ClusterRoutes: RouteGroup {}
extension DeadLetterRoutes: RouteGroup {}
extension HealthRoutes: RouteGroup {}
extension MetricsRoute: RouteGroup {}
extension DashboardRoute: RouteGroup {}

/// `GET /metrics`: the Prometheus text of every metric.
struct MetricsRoute: Sendable {
    let metrics: SchedulerMetrics

    func add(to router: Router<BasicRequestContext>) {
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: metrics.render())))
        }
    }
}
