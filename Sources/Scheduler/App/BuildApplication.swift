import Hummingbird
import Logging
import ServiceLifecycle

/// Builds the daemon: embedded broker (when `[kafka] brokers` is empty),
/// producer, `generate.lua`, and the HTTP API, wired as services of one
/// Hummingbird application. `main` and the tests both start it through here.
public func buildApplication(_ options: LaunchOptions) async throws -> some ApplicationProtocol {
    let config = options.config
    let logger = options.logger
    // Before anything connects to Kafka: a taken port fails in one line.
    try ListenCheck.check(host: config.api.hostAndPort.host, port: config.api.hostAndPort.port, address: config.api.listen)
    var services: [any Service] = []
    let metrics = SchedulerMetrics()

    let broker: EmbeddedBroker?
    let bootstrapServers: String
    if config.usesEmbeddedBroker {
        let started = try EmbeddedBroker.start()
        for topic in Set(config.groups.flatMap(\.topics)) {
            try started.createTopic(topic, partitions: config.kafka.partitions)
        }
        // One partition: the pool's order is its offset order. (The mock
        // cannot be told cleanup.policy=compact; it lives as long as the broker.)
        try started.createTopic(config.producer.poolTopic, partitions: 1)
        try started.createTopic(config.schedules.topic, partitions: config.schedules.partitions)
        try started.createTopic(config.cluster.reportsTopic, partitions: 1)
        // One partition: it orders the claims of every redrive.
        try started.createTopic(config.cluster.redriveTopic, partitions: 1)
        logger.notice("embedded Kafka broker (in memory, lost on exit) listening",
                      metadata: [LogKey.bootstrap: "\(started.bootstrapServers)"])
        broker = started
        bootstrapServers = started.bootstrapServers
        services.append(EmbeddedBrokerService(broker: started, logger: logger))
    } else {
        broker = nil
        bootstrapServers = config.kafka.brokers.joined(separator: ",")
        logger.notice("using Kafka cluster", metadata: [LogKey.bootstrap: "\(bootstrapServers)"])
    }

    let producer = try KafkaProducer.make(
        bootstrapServers: bootstrapServers,
        deliveryTimeoutMs: config.producer.timeoutMs,
        properties: config.kafka.properties.merging([
            "message.max.bytes": String(max(config.producer.maxMessageBytes + 4096, 1000)),
            // Bounded memory: past this, produce() answers QUEUE_FULL and the API 503.
            "queue.buffering.max.messages": String(config.producer.maxPending),
        ]) { user, _ in user })
    services.append(ProducerService(producer: producer, flushTimeoutMs: config.producer.timeoutMs, logger: logger))
    // The cluster reports go right after the producer (inserted once the
    // groups exist): they stop after everything that holds partitions.
    let clusterServiceIndex = services.count

    let partitions = config.kafka.partitions
    let publisher = TaskPublisher(
        producer: producer,
        maxMessageBytes: config.producer.maxMessageBytes,
        logger: logger,
        metrics: metrics,
        topicCreator: broker.map { broker in { @Sendable topic in try broker.createTopic(topic, partitions: partitions) } },
        policy: TopicPolicy(config))

    let schedules = ScheduleStore(config: config.schedules, publisher: publisher, metrics: metrics, logger: logger,
                                  pending: PendingRecords(config.scripts))
    if config.schedules.enabled {
        // After the producer: it stops (leaving the group, settling fires) before the producer closes.
        services.append(ScheduleService(store: schedules, group: config.schedules.group, bootstrapServers: bootstrapServers,
                                        properties: config.kafka.properties, membership: config.kafka.membership))
    }
    // Every daemon lists every schedule of the cluster, firing them or not.
    services.append(ScheduleCatalogFollower(store: schedules, bootstrapServers: bootstrapServers, properties: config.kafka.properties))

    let catalog = try await ScriptCatalog.load(
        directory: options.scriptsDirectory, limits: LuaLimits(config.scripts), needsProcess: !config.groups.isEmpty,
        logger: logger, metrics: metrics, schedules: schedules.placement)
    var groups: [GroupRuntime] = []
    // Made, not started: each group joins Kafka in its service's run().
    for group in config.groups {
        do {
            let runtime = try await GroupRuntime.make(
                group: group, bootstrapServers: bootstrapServers, properties: config.kafka.properties, membership: config.kafka.membership,
                publisher: publisher, catalog: catalog, logger: logger,
                grace: ShutdownGrace(maxCallMs: config.scripts.maxCallMs, producerTimeoutMs: config.producer.timeoutMs))
            groups.append(runtime)
        } catch {
            for made in groups { await made.shutdown() }
            throw error
        }
        // After the producer in the list, so the group stops (and commits)
        // before the producer it dead-letters and emits through is closed.
        services.append(groups.last!)
    }

    let script: GenerateScript
    do {
        script = try await GenerateScript.load(catalog: catalog, logger: logger)
    } catch {
        // The groups hold threads, Lua states and a consumer: free them.
        for group in groups { await group.shutdown() }
        throw error
    }
    let pool = TaskPoolStore(topic: config.producer.poolTopic, capacity: config.producer.maxPoolTasks,
                              loadWaitMs: config.producer.timeoutMs, publisher: publisher, bootstrapServers: bootstrapServers,
                              properties: config.kafka.properties, logger: logger)
    // Made, not started: the generator runs the election in its run().
    let election = PoolElection(topic: config.producer.poolTopic, bootstrapServers: bootstrapServers,
                                properties: config.kafka.properties, membership: config.kafka.membership, logger: logger)
    services.append(TaskPoolService(store: pool, initialTasks: script.initialTasks, logger: logger))
    // After the pool's service: on shutdown it stops ticking and leaves the
    // publishers' group while the follower still runs.
    services.append(TaskGeneratorService(script: script, publisher: publisher, pool: pool, election: election, metrics: metrics,
                                         intervalMs: config.producer.intervalMs, logger: logger))
    services.append(ReloadOnHangupService(catalog: catalog, logger: logger))
    services.append(ScriptScheduleService(store: schedules, script: script, catalog: catalog, logger: logger))

    let cluster = ClusterBook(identity: DaemonIdentity(name: config.cluster.name), intervalMs: config.cluster.reportIntervalMs)
    let reportSource = ClusterReportSource(identity: cluster.identity, intervalMs: config.cluster.reportIntervalMs, groups: groups,
                                           schedules: schedules, catalog: catalog, metrics: metrics,
                                           publishesPool: { election.role.read { $0.isPublisher } })
    services.insert(ClusterService(book: cluster, topic: config.cluster.reportsTopic, bootstrapServers: bootstrapServers,
                                   properties: config.kafka.properties, source: reportSource, publisher: publisher, logger: logger),
                    at: clusterServiceIndex)
    services.append(ClusterStopNotice(book: cluster))

    let router = Router(context: BasicRequestContext.self)
    router.add(middleware: HTTPMetricsMiddleware(metrics: metrics))
    router.add(middleware: JSONErrorMiddleware(routes: [
        "/tasks/generate": [.post], "/tasks": [.get, .delete], "/tasks/pending": [.get], "/health": [.get], "/groups": [.get],
        "/scripts": [.get], "/scripts/reload": [.post], "/metrics": [.get], "/cluster": [.get], "/": [.get], "/dlq": [.get],
        "/schedules": [.get],
    ]))
    if !config.api.token.isEmpty {
        router.add(middleware: TokenMiddleware(token: Array(config.api.token.utf8)))
    }
    router.get("/metrics") { _, _ in
        Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(string: metrics.render())))
    }
    DashboardRoute().add(to: router)
    GroupRoutes(groups: groups).add(to: router)
    DeadLetterRoutes(groups: config.groups, inspector: DeadLetterInspector(
        bootstrapServers: bootstrapServers, properties: config.kafka.properties, timeoutMs: config.producer.timeoutMs),
                     redriver: Redriver(bootstrapServers: bootstrapServers, properties: config.kafka.properties, producer: producer,
                                        ledgerTopic: config.cluster.redriveTopic, timeoutMs: config.producer.timeoutMs, logger: logger)).add(to: router)
    ClusterRoutes(book: cluster).add(to: router)
    ScriptRoutes(catalog: catalog, logger: logger).add(to: router)
    TaskRoutes(publisher: publisher, pool: pool, schedules: schedules, cluster: cluster, script: script, maxBodyBytes: config.api.maxBodyBytes).add(to: router)
    ScheduleRoutes(schedules: schedules, cluster: cluster, script: script, maxBodyBytes: config.api.maxBodyBytes).add(to: router)
    HealthRoutes(bootstrapServers: bootstrapServers, embeddedBroker: broker != nil, publisher: publisher, schedules: schedules,
                 pool: pool, election: election).add(to: router)

    let (host, port) = config.api.hostAndPort
    let onListening = options.onListening
    return Application(
        router: router,
        configuration: .init(address: .hostname(host, port: port), serverName: "task-scheduler"),
        services: services,
        onServerRunning: { channel in
            let bound = channel.localAddress?.port ?? port
            logger.notice("task API listening", metadata: [LogKey.listen: "\(host):\(bound)"])
            reportSource.api.withLock { $0 = "\(host):\(bound)" }
            await onListening?(bound)
        },
        logger: logger)
}
