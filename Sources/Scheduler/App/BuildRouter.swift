import Hummingbird

/// The HTTP API over the daemon's parts: the middleware, then one route
/// group per resource, then the 405 answers derived from what was registered.
func buildRouter(_ daemon: DaemonServices) -> Router<BasicRequestContext> {
    let router = Router(context: BasicRequestContext.self)
    router.add(middleware: HTTPMetricsMiddleware(metrics: daemon.metrics))
    router.add(middleware: JSONErrorMiddleware())
    if !daemon.config.api.token.isEmpty {
        router.add(middleware: TokenMiddleware(token: Array(daemon.config.api.token.utf8)))
    }
    for group in routeGroups(daemon) { group.add(to: router) }
    // Added last, so it wraps only the router's not-found answer (Hummingbird
    // applies a middleware to the routes added after it, and to not-found).
    router.add(middleware: MethodNotAllowedMiddleware(routes: RouteTable(router.routes.map { (method: $0.method, path: $0.path) })))
    return router
}

/// One group of routes per resource, each registering its own paths.
private func routeGroups(_ daemon: DaemonServices) -> [any RouteGroup] {
    let config = daemon.config
    let kafka = daemon.kafka
    let maxBody = config.api.maxBodyBytes
    return [
        TaskRoutes(publisher: daemon.publisher, pool: daemon.pool, schedules: daemon.schedules, cluster: daemon.cluster,
                   script: daemon.script, maxBodyBytes: maxBody),
        ScheduleRoutes(schedules: daemon.schedules, cluster: daemon.cluster, script: daemon.script, maxBodyBytes: maxBody),
        GroupRoutes(groups: daemon.groups),
        ScriptRoutes(catalog: daemon.catalog, logger: daemon.logger),
        ClusterRoutes(book: daemon.cluster),
        DeadLetterRoutes(
            groups: config.groups,
            inspector: DeadLetterInspector(bootstrapServers: kafka.bootstrapServers, properties: config.kafka.properties,
                                           timeoutMs: config.producer.timeoutMs),
            redriver: daemon.redriver),
        HealthRoutes(bootstrapServers: kafka.bootstrapServers, embeddedBroker: kafka.broker != nil, publisher: daemon.publisher,
                     schedules: daemon.schedules, pool: daemon.pool, election: daemon.election),
        MetricsRoute(metrics: daemon.metrics),
        DashboardRoute(),
    ]
}
