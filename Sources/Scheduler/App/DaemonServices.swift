import Hummingbird
import Logging
import ServiceLifecycle

/// Where the daemon's Kafka clients connect: the embedded broker (started
/// here, when `[kafka] brokers` is empty) or the configured cluster.
struct KafkaEndpoint {
    let broker: EmbeddedBroker?
    let bootstrapServers: String

    static func start(_ config: SchedulerConfig, logger: Logger) throws -> KafkaEndpoint {
        guard config.usesEmbeddedBroker else {
            let servers = config.kafka.brokers.joined(separator: ",")
            logger.notice("using Kafka cluster", metadata: [LogKey.bootstrap: "\(servers)"])
            return KafkaEndpoint(broker: nil, bootstrapServers: servers)
        }
        let broker = try EmbeddedBroker.start()
        for topic in Set(config.groups.flatMap(\.topics)) {
            try broker.createTopic(topic, partitions: config.kafka.partitions)
        }
        // One partition: the pool's order is its offset order. (The mock
        // cannot be told cleanup.policy=compact; it lives as long as the broker.)
        try broker.createTopic(config.producer.poolTopic, partitions: 1)
        try broker.createTopic(config.schedules.topic, partitions: config.schedules.partitions)
        try broker.createTopic(config.cluster.reportsTopic, partitions: 1)
        // One partition: it orders the claims of every redrive.
        try broker.createTopic(config.cluster.redriveTopic, partitions: 1)
        logger.notice("embedded Kafka broker (in memory, lost on exit) listening",
                      metadata: [LogKey.bootstrap: "\(broker.bootstrapServers)"])
        return KafkaEndpoint(broker: broker, bootstrapServers: broker.bootstrapServers)
    }
}

/// The daemon's parts, made but not started (each long-lived one starts in
/// its service's `run()`), and the services in the order they start; they
/// stop in the reverse order. `buildRouter` serves the API over these parts.
struct DaemonServices {
    let config: SchedulerConfig
    let logger: Logger
    let metrics: SchedulerMetrics
    let kafka: KafkaEndpoint
    let producer: KafkaProducer
    let publisher: TaskPublisher
    let schedules: ScheduleStore
    let catalog: ScriptCatalog
    let groups: [GroupRuntime]
    let script: GenerateScript
    let pool: TaskPoolStore
    let election: PoolElection
    let cluster: ClusterBook
    let reportSource: ClusterReportSource
    let redriver: Redriver

    static func build(_ options: LaunchOptions) async throws -> DaemonServices {
        let config = options.config
        let logger = options.logger
        let metrics = SchedulerMetrics()
        let kafka = try KafkaEndpoint.start(config, logger: logger)
        let producer = try makeProducer(config, kafka)
        let publisher = TaskPublisher(
            producer: producer, maxMessageBytes: config.producer.maxMessageBytes, logger: logger, metrics: metrics,
            topicCreator: kafka.broker.map { broker in
                { @Sendable [partitions = config.kafka.partitions] topic in try broker.createTopic(topic, partitions: partitions) }
            },
            policy: TopicPolicy(config))
        let schedules = ScheduleStore(config: config.schedules, publisher: publisher, metrics: metrics, logger: logger,
                                      pending: PendingRecords(config.scripts))
        let catalog = try await ScriptCatalog.load(
            directory: options.scriptsDirectory, limits: LuaLimits(config.scripts), needsProcess: !config.groups.isEmpty,
            logger: logger, events: metrics, features: [SchedulePlacement.scriptFeature(schedules.placement)])
        let groups = try await makeGroups(config, kafka, publisher: publisher, catalog: catalog, metrics: metrics, logger: logger)
        let script = try await loadGenerate(catalog: catalog, groups: groups, logger: logger)
        let pool = TaskPoolStore(topic: config.producer.poolTopic, capacity: config.producer.maxPoolTasks,
                                 loadWaitMs: config.producer.timeoutMs, publisher: publisher, bootstrapServers: kafka.bootstrapServers,
                                 properties: config.kafka.properties, logger: logger)
        // Made, not started: the generator runs the election in its run().
        let election = PoolElection(topic: config.producer.poolTopic, bootstrapServers: kafka.bootstrapServers,
                                    properties: config.kafka.properties, membership: config.kafka.membership, logger: logger)
        let cluster = ClusterBook(identity: DaemonIdentity(name: config.cluster.name), intervalMs: config.cluster.reportIntervalMs)
        let reportSource = ClusterReportSource(identity: cluster.identity, intervalMs: config.cluster.reportIntervalMs, groups: groups,
                                               schedules: schedules, catalog: catalog, metrics: metrics,
                                               publishesPool: { election.role.read { $0.isPublisher } })
        let redriver = Redriver(bootstrapServers: kafka.bootstrapServers, properties: config.kafka.properties, producer: producer,
                                ledgerTopic: config.cluster.redriveTopic, timeoutMs: config.producer.timeoutMs, logger: logger)
        return DaemonServices(config: config, logger: logger, metrics: metrics, kafka: kafka, producer: producer, publisher: publisher,
                              schedules: schedules, catalog: catalog, groups: groups, script: script, pool: pool, election: election,
                              cluster: cluster, reportSource: reportSource, redriver: redriver)
    }

    private static func makeProducer(_ config: SchedulerConfig, _ kafka: KafkaEndpoint) throws -> KafkaProducer {
        try KafkaProducer.make(
            bootstrapServers: kafka.bootstrapServers,
            deliveryTimeoutMs: config.producer.timeoutMs,
            properties: config.kafka.properties.merging([
                "message.max.bytes": String(max(config.producer.maxMessageBytes + 4096, 1000)),
                // Bounded memory: past this, produce() answers QUEUE_FULL and the API 503.
                "queue.buffering.max.messages": String(config.producer.maxPending),
            ]) { user, _ in user })
    }

    /// Made, not started: each group joins Kafka in its service's run().
    private static func makeGroups(_ config: SchedulerConfig, _ kafka: KafkaEndpoint, publisher: TaskPublisher,
                                   catalog: ScriptCatalog, metrics: SchedulerMetrics, logger: Logger) async throws -> [GroupRuntime] {
        var groups: [GroupRuntime] = []
        for group in config.groups {
            do {
                groups.append(try await GroupRuntime.make(
                    group: group, bootstrapServers: kafka.bootstrapServers, properties: config.kafka.properties,
                    membership: config.kafka.membership, publisher: publisher, catalog: catalog, metrics: metrics, logger: logger,
                    grace: ShutdownGrace(maxCallMs: config.scripts.maxCallMs, producerTimeoutMs: config.producer.timeoutMs)))
            } catch {
                for made in groups { await made.shutdown() }
                throw error
            }
        }
        return groups
    }

    private static func loadGenerate(catalog: ScriptCatalog, groups: [GroupRuntime], logger: Logger) async throws -> GenerateScript {
        do {
            return try await GenerateScript.load(catalog: catalog, logger: logger)
        } catch {
            // The groups hold threads, Lua states and a consumer: free them.
            for group in groups { await group.shutdown() }
            throw error
        }
    }

    /// The services in start order; ServiceGroup stops them in reverse.
    /// Call once: each call makes new service values.
    func services() -> [any Service] {
        var services: [any Service] = []
        if let broker = kafka.broker { services.append(EmbeddedBrokerService(broker: broker, logger: logger)) }
        services.append(ProducerService(producer: producer, flushTimeoutMs: config.producer.timeoutMs, logger: logger))
        // Right after the producer: the reports stop after everything that holds partitions.
        services.append(ClusterService(book: cluster, topic: config.cluster.reportsTopic, bootstrapServers: kafka.bootstrapServers,
                                       properties: config.kafka.properties, source: reportSource, publisher: publisher, logger: logger))
        if config.schedules.enabled {
            // After the producer: it stops (leaving the group, settling fires) before the producer closes.
            services.append(ScheduleService(store: schedules, group: config.schedules.group, bootstrapServers: kafka.bootstrapServers,
                                            properties: config.kafka.properties, membership: config.kafka.membership))
        }
        // Every daemon lists every schedule of the cluster, firing them or not.
        services.append(ScheduleCatalogFollower(store: schedules, bootstrapServers: kafka.bootstrapServers,
                                                properties: config.kafka.properties))
        // After the producer, so each group stops (and commits) before the
        // producer it dead-letters and emits through is closed.
        services.append(contentsOf: groups as [any Service])
        services.append(TaskPoolService(store: pool, initialTasks: script.initialTasks, logger: logger))
        // After the pool's service: on shutdown it stops ticking and leaves the
        // publishers' group while the follower still runs.
        services.append(TaskGeneratorService(script: script, publisher: publisher, pool: pool, election: election, metrics: metrics,
                                             intervalMs: config.producer.intervalMs, logger: logger))
        services.append(ReloadOnHangupService(catalog: catalog, logger: logger))
        services.append(ScriptScheduleService(store: schedules, script: script, catalog: catalog, logger: logger))
        services.append(ClusterStopNotice(book: cluster))
        // After the producer's service: a running redrive ends before the producer closes.
        services.append(redriver)
        return services
    }
}
