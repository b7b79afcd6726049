import Hummingbird
import Logging

/// `GET /scripts` and `POST /scripts/reload`.
struct ScriptRoutes: Sendable {
    let catalog: ScriptCatalog
    let logger: Logger

    func add(to router: Router<BasicRequestContext>) {
        router.get("/scripts") { _, _ in JSONBody.response(catalog.view()) }
        // 200 when the new scripts are in force; 422 with the error (file,
        // line, message) when they were refused and the old ones stay.
        router.post("/scripts/reload") { _, _ in
            let result = await catalog.reload(logger: logger)
            return JSONBody.response(status: result.ok ? .ok : .unprocessableContent, ReloadView(result))
        }
    }
}
