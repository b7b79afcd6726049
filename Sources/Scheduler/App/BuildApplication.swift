import Hummingbird
import Logging
import ServiceLifecycle

/// Builds the daemon: its services (`DaemonServices`: embedded broker when
/// `[kafka] brokers` is empty, producer, scripts, groups, schedules, pool,
/// cluster reports) and the HTTP API over them (`buildRouter`), as one
/// Hummingbird application. `main` and the tests both start it through here.
public func buildApplication(_ options: LaunchOptions) async throws -> some ApplicationProtocol {
    let config = options.config
    // Before anything connects to Kafka: a taken port fails in one line.
    try ListenCheck.check(host: config.api.hostAndPort.host, port: config.api.hostAndPort.port, address: config.api.listen)
    let daemon = try await DaemonServices.build(options)
    return application(daemon, router: buildRouter(daemon), options)
}

/// The application serving `router` over `daemon`'s services.
func application(_ daemon: DaemonServices, router: Router<BasicRequestContext>, _ options: LaunchOptions) -> some ApplicationProtocol {
    let (host, port) = options.config.api.hostAndPort
    let logger = options.logger
    let onListening = options.onListening
    let reportSource = daemon.reportSource
    return Application(
        router: router,
        configuration: .init(address: .hostname(host, port: port), serverName: "task-scheduler"),
        services: daemon.services(),
        onServerRunning: { channel in
            let bound = channel.localAddress?.port ?? port
            logger.notice("task API listening", metadata: [LogKey.listen: "\(host):\(bound)"])
            reportSource.api.withLock { $0 = "\(host):\(bound)" }
            await onListening?(bound)
        },
        logger: logger)
}
