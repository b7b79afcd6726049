import CoreMetrics
import Hummingbird
import Synchronization

/// Counts every request (`scheduler_http_requests_total{method,path,status}`)
/// and times it (`scheduler_http_request_duration_seconds{method,path}`).
/// `path` is the matched route, or `unmatched`, so that random URLs cannot
/// grow the number of series.
struct HTTPMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: SchedulerMetrics
    /// The counter and timer of each (method, route, status) seen, so a
    /// request looks them up by a small key instead of building the
    /// registry's label strings (a few per cent of a request's CPU).
    private let series = HandleCache<SeriesKey, (CoreMetrics.Counter, CoreMetrics.Timer)>()

    init(metrics: SchedulerMetrics) {
        self.metrics = metrics
    }

    private struct SeriesKey: Hashable {
        let method: String
        let path: String
        let status: Int
    }

    private func handles(method: String, path: String, status: Int) -> (CoreMetrics.Counter, CoreMetrics.Timer) {
        series.value(for: SeriesKey(method: method, path: path, status: status)) {
            (metrics.counter(MetricName.httpRequests, [("method", method), ("path", path), ("status", String(status))]),
             metrics.timer(MetricName.httpDuration, [("method", method), ("path", path)]))
        }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        var status = HTTPResponse.Status.internalServerError
        var path = "unmatched"
        defer {
            let (requests, duration) = handles(method: Self.methodLabel(request.method), path: path, status: status.code)
            requests.increment()
            duration.record(duration: .now - started)
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

    /// The method as a label: a client can send any token as its method,
    /// so others than the standard ones share `other`.
    static func methodLabel(_ method: HTTPRequest.Method) -> String {
        let standard: Set<HTTPRequest.Method> = [.get, .head, .post, .put, .delete, .patch, .options, .connect, .trace]
        return standard.contains(method) ? method.rawValue : "other"
    }

    /// The matched route pattern; nil for no match (Hummingbird names that "NotFound").
    static func route(_ context: Context) -> String? {
        context.endpointPath.flatMap { $0.hasPrefix("/") ? $0 : nil }
    }
}
