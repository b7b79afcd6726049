import Hummingbird

/// `GET /groups`: each group's workers, partitions and handoff gaps.
struct GroupRoutes: Sendable {
    let groups: [GroupRuntime]

    func add(to router: Router<BasicRequestContext>) {
        router.get("/groups") { _, _ in
            var views: [GroupView] = []
            // A group that has stopped (shutdown in progress) is left out.
            for group in groups { if let view = await group.snapshot() { views.append(view) } }
            return JSONBody.response(views)
        }
    }
}
