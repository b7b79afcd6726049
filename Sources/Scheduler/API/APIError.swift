import Foundation
import Hummingbird

/// An API failure answered as `{"error": "..."}` with its status code.
public struct APIError: HTTPResponseError, CustomStringConvertible, Sendable {
    /// HTTP status.
    public var status: HTTPResponse.Status
    /// What is wrong, for the client.
    public var message: String
    /// Extra response headers (e.g. `Allow` on 405).
    public var headers: HTTPFields

    /// Creates an error.
    public init(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.headers = headers
    }

    public var description: String { "\(status.code) \(message)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = JSONBody.response(status: status, ["error": message])
        response.headers.append(contentsOf: headers)
        return response
    }
}

/// JSON response bodies.
enum JSONBody {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// `value` encoded as JSON with `Content-Type: application/json`.
    static func response(status: HTTPResponse.Status = .ok, _ value: some Encodable) -> Response {
        // Encoding plain Encodable model values cannot fail; fall back to null if it ever did.
        let data = (try? encoder.encode(value)) ?? Data("null".utf8)
        return Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
