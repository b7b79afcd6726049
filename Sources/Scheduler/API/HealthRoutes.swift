import Hummingbird

/// `GET /health`.
struct HealthRoutes: Sendable {
    let bootstrapServers: String
    let embeddedBroker: Bool
    let publisher: TaskPublisher
    let schedules: ScheduleStore
    let pool: TaskPoolStore
    let election: PoolElection

    func add(to router: Router<BasicRequestContext>) {
        router.get("/health") { _, _ in
            let ownership = schedules.ownership
            return JSONBody.response(HealthView(
                status: "ok", bootstrap_servers: bootstrapServers, embedded_broker: embeddedBroker,
                pending_tasks: publisher.pendingCount,
                schedules: ScheduleHealthView(live: schedules.isLive, owned: ownership.count, partitions: ownership.partitions,
                                              catalog: schedules.catalog.withLock { CatalogHealthView(live: $0.isLive, schedules: $0.count) }),
                pool: PoolHealthView(pool: pool, role: election.role.read { $0 })))
        }
    }
}

/// Body of `GET /health`.
struct HealthView: Encodable {
    let status: String
    let bootstrap_servers: String
    let embedded_broker: Bool
    let pending_tasks: Int
    let schedules: ScheduleHealthView
    let pool: PoolHealthView
}

/// The `schedules` part of `GET /health`: whether this daemon holds schedule
/// partitions and read them all (`live`), how many schedules it owns, and which partitions.
struct ScheduleHealthView: Encodable {
    let live: Bool
    let owned: Int
    let partitions: [Int32]
    /// Every schedule of the cluster as this daemon follows them (`GET /tasks`).
    let catalog: CatalogHealthView
}

/// The schedule catalog in `GET /health`: whether every partition of the
/// schedule topic was read to its end (the listing is complete), and how many schedules it holds.
struct CatalogHealthView: Encodable {
    let live: Bool
    let schedules: Int
}

/// The `pool` part of `GET /health`: whether this daemon is the pool's
/// publisher (runs the ticks), whether the pool was read (`live`), its size,
/// the last tick recorded in the pool topic, and this daemon's ticks by outcome.
struct PoolHealthView: Encodable {
    let publisher: Bool
    let live: Bool
    let tasks: Int
    let last_tick: Int?
    let ticks: [String: Int]

    init(pool: TaskPoolStore, role: PublisherRole) {
        let state = pool.follower.state.read { ($0.isReady, $0.count, $0.lastTick?.tick) }
        publisher = role.isPublisher
        (live, tasks, last_tick) = state
        ticks = ["published": role.published, "doubled": role.doubled, "skipped": role.skipped]
    }
}
