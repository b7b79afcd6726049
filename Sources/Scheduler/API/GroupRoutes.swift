import Hummingbird

/// `GET /groups`: each group's workers, partitions and handoff gaps.
struct GroupRoutes: Sendable {
    let groups: [GroupRuntime]

    func add(to router: Router<BasicRequestContext>) {
        router.get("/groups") { _, _ in
            var views: [GroupView] = []
            for group in groups { views.append(await group.snapshot()) }
            return JSONBody.response(views)
        }
    }
}
