import Hummingbird

/// The methods each registered path is served with, for 405 answers.
///
/// A request path is resolved as Hummingbird's trie router resolves it: at
/// each segment a literal beats a capture, with no going back, so
/// `DELETE /tasks/pending` resolves to `/tasks/pending` (GET), not to
/// `/tasks/:index` (DELETE). Built from `Router.routes`, so every route,
/// parameterised ones included, answers 405 without a table kept by hand.
struct RouteTable: Sendable {
    private let paths: [(path: RouterPath, methods: [HTTPRequest.Method])]

    init(_ routes: [(method: HTTPRequest.Method, path: RouterPath)]) {
        var byPath: [String: (path: RouterPath, methods: [HTTPRequest.Method])] = [:]
        for route in routes {
            byPath[route.path.description, default: (route.path, [])].methods.append(route.method)
        }
        paths = byPath.values.map { (path: $0.path, methods: $0.methods.sorted(by: Self.allowOrder)) }
    }

    /// The methods served at the path `path` resolves to; nil when it resolves to none.
    func methods(for path: String) -> [HTTPRequest.Method]? {
        let segments = path.split(separator: "/")
        var candidates = paths.filter { $0.path.components.count == segments.count }
        for (index, segment) in segments.enumerated() {
            let literal = candidates.filter { $0.path.components[index] == segment }
            candidates = literal.isEmpty ? candidates.filter { $0.path.components[index] ~= segment } : literal
        }
        return candidates.first?.methods
    }

    /// `Allow` lists the usual methods in the usual order (GET before DELETE), others after by name.
    private static func allowOrder(_ a: HTTPRequest.Method, _ b: HTTPRequest.Method) -> Bool {
        let usual: [HTTPRequest.Method] = [.get, .head, .post, .put, .patch, .delete, .options]
        let rank = { (method: HTTPRequest.Method) in usual.firstIndex(of: method) ?? usual.count }
        return (rank(a), a.rawValue) < (rank(b), b.rawValue)
    }
}

/// A known path asked with a method it is not served with: 405 with `Allow`
/// (the router itself answers 404 for both). Wraps only the not-found answer.
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            guard let methods = routes.methods(for: request.uri.path), !methods.contains(request.method) else { throw error }
            throw APIError(.methodNotAllowed, "method \(request.method) not allowed on \(request.uri.path)",
                           headers: [.allow: methods.map(\.rawValue).joined(separator: ", ")])
        }
    }
}
