import CoreMetrics
import Hummingbird

/// Counts every request (`scheduler_http_requests_total{method,path,status}`)
/// and times it (`scheduler_http_request_duration_seconds{method,path}`).
/// `path` is the matched route, or `unmatched`, so that random URLs cannot
/// grow the number of series.
struct HTTPMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: SchedulerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        var status = HTTPResponse.Status.internalServerError
        var path = "unmatched"
        defer {
            let method = request.method.rawValue
            metrics.counter(MetricName.httpRequests, [("method", method), ("path", path), ("status", String(status.code))]).increment()
            metrics.timer(MetricName.httpDuration, [("method", method), ("path", path)]).record(duration: .now - started)
        }
        do {
            let response = try await next(request, context)
            status = response.status
            path = Self.route(context) ?? path
            return response
        } catch let error as HTTPResponseError {
            status = error.status
            path = Self.route(context) ?? path
            throw error
        }
    }

    /// The matched route pattern; nil for no match (Hummingbird names that "NotFound").
    static func route(_ context: Context) -> String? {
        context.endpointPath.flatMap { $0.hasPrefix("/") ? $0 : nil }
    }
}
