import Hummingbird

/// `GET /`: the live dashboard (`Resources/dashboard.html`, compiled in).
struct DashboardRoute: Sendable {
    func add(to router: Router<BasicRequestContext>) {
        router.get("/") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(bytes: PackageResources.dashboard_html)))
        }
    }
}
