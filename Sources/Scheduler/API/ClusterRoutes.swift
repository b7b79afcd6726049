import Hummingbird

/// `GET /cluster`: every daemon heard of through the reports topic (live,
/// stopping or gone), when it last reported, and what it holds.
struct ClusterRoutes: Sendable {
    let book: ClusterBook

    func add(to router: Router<BasicRequestContext>) {
        router.get("/cluster") { _, _ in JSONBody.response(book.view()) }
    }
}
