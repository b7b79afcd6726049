import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Scheduler

@Suite("HTTP routes: 405 derived from the registered routes", .sharesMachine)
struct RouteTests {
    /// The order `Allow` lists methods in, stated here independently of `RouteTable`.
    static let allowOrder: [HTTPRequest.Method] = [.get, .head, .post, .put, .patch, .delete, .options]

    static let table = RouteTable([
        (.get, "/tasks"), (.delete, "/tasks"), (.get, "/tasks/pending"), (.delete, "/tasks/:index"),
        (.get, "/schedules/:id"), (.put, "/schedules/:id"), (.delete, "/schedules/:id"), (.post, "/schedules/:id/pause"),
        (.post, "/dlq/:topic/redrive"), (.get, "/"),
    ])

    @Test("a path resolves as the router resolves it: a literal segment beats a capture", arguments: [
        ("/tasks", "GET, DELETE"), ("/tasks/7", "DELETE"), ("/tasks/pending", "GET"),
        ("/schedules/s-1", "GET, PUT, DELETE"), ("/schedules/s-1/pause", "POST"), ("/dlq/A.dlq/redrive", "POST"),
        ("/", "GET"), ("/tasks/7/more", nil), ("/nope", nil), ("/dlq/A.dlq", nil),
    ])
    func resolve(path: String, allow: String?) {
        #expect(Self.table.methods(for: path)?.map(\.rawValue).joined(separator: ", ") == allow)
    }

    @Test("every registered route answers a wrong method with 405 and Allow listing its path's methods")
    func everyRouteAnswers405() async throws {
        let options = LaunchOptions(config: testConfig(), scriptsDirectory: repositoryScripts, logger: quietLogger)
        let daemon = try await DaemonServices.build(options)
        let router = buildRouter(daemon)
        var byPath: [String: (path: RouterPath, methods: Set<HTTPRequest.Method>)] = [:]
        for route in router.routes { byPath[route.path.description, default: (route.path, [])].methods.insert(route.method) }
        // Parameterised routes are among them (the hand-kept table missed these).
        #expect(byPath.keys.contains("/tasks/{index}") && byPath.keys.contains("/dlq/{topic}/redrive"))
        #expect(byPath.keys.contains("/schedules/{id}") && byPath.keys.contains("/schedules/{id}/pause"))
        let paths = byPath
        try await application(daemon, router: router, options).test(.live) { client in
            for (pattern, entry) in paths.sorted(by: { $0.key < $1.key }) {
                let path = "/" + entry.path.components.map { $0 == $0.description ? $0.description : "x-405" }.joined(separator: "/")
                let wrong = try #require([HTTPRequest.Method.put, .patch, .post, .delete, .get].first { !entry.methods.contains($0) })
                let response = try await client.execute(uri: path, method: wrong)
                let expected = Self.allowOrder.filter(entry.methods.contains).map(\.rawValue).joined(separator: ", ")
                #expect(response.status == .methodNotAllowed, "\(wrong) \(path) (\(pattern))")
                #expect(response.headers[.allow] == expected, "\(wrong) \(path) (\(pattern))")
                #expect(errorText(response)?.contains("method \(wrong) not allowed") == true, "\(pattern)")
            }
        }
    }
}
