import Hummingbird

/// Requires `Authorization: Bearer <token>` on the mutating endpoints when
/// `[api] token` (or `TASK_SCHEDULER_API_TOKEN`) is set; reads stay open.
struct TokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: [UInt8]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.method != .get && request.method != .head else { return try await next(request, context) }
        let header = request.headers[.authorization] ?? ""
        let prefix = "Bearer "
        guard header.hasPrefix(prefix), Self.equal(Array(header.dropFirst(prefix.count).utf8), token) else {
            throw APIError(.unauthorized, header.isEmpty ? "this endpoint needs 'Authorization: Bearer <token>' ([api] token)"
                                                          : "the API token is wrong",
                           headers: [.wwwAuthenticate: "Bearer"])
        }
        return try await next(request, context)
    }

    /// Compares in time independent of where the first difference is.
    static func equal(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        return zip(lhs, rhs).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
