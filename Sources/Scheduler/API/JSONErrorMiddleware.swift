import Hummingbird
import Logging

/// Turns every error, including the framework's own (404 for an unknown path,
/// 413 for an oversized body), into a JSON `{"error": ...}` answer. (405 for
/// a known path's wrong method: `MethodNotAllowedMiddleware`.)
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as HTTPResponseError {
            // The framework's own errors: HTTPError (404 from the router) and
            // NIOTooManyBytesError (413 from collectBody).
            let httpError = error as? HTTPError
            switch error.status {
            case .notFound:
                throw APIError(.notFound, "no such endpoint: \(request.method) \(request.uri.path)")
            case .contentTooLarge:
                throw APIError(.contentTooLarge, "request body is larger than the limit (api.max_body_bytes)")
            default:
                throw APIError(error.status, httpError?.body ?? error.status.reasonPhrase, headers: httpError?.headers ?? [:])
            }
        } catch {
            context.logger.error("request failed: \(error)")
            throw APIError(.internalServerError, "internal error: \(error)")
        }
    }
}
