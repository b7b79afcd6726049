import Logging
import ServiceLifecycle
import UnixSignals

/// `kill -HUP <pid>` reloads every script (see `ScriptCatalog.reload`).
struct ReloadOnHangupService: Service {
    let catalog: ScriptCatalog
    let logger: Logger

    func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        try? await cancelWhenGracefulShutdown {
            for await _ in hangups {
                logger.notice("SIGHUP: reloading scripts")
                _ = await catalog.reload(logger: logger)
            }
        }
    }
}
