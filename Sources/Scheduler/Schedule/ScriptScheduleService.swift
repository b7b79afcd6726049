import Logging
import ServiceLifecycle

/// Applies generate.lua's named schedules (`ScriptSchedules`) once the
/// schedule catalog was read (so what exists is known), then after every
/// script reload: creates the missing ones, updates the changed ones in
/// place, removes the script schedules no longer declared. Every daemon does
/// it; the name being the id, the cluster holds one of each, and a daemon
/// that finds a schedule already as declared writes nothing.
struct ScriptScheduleService: Service {
    let store: ScheduleStore
    let script: GenerateScript
    let catalog: ScriptCatalog
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            guard await store.catalogLive.wait(until: { $0 }) else { return }
            var applied = 0
            while !Task.isCancelled {
                applied = catalog.generation
                await apply()
                let seen = applied
                guard await catalog.generationWatch.wait(until: { $0 != seen }) else { return }
            }
        }
    }

    private func apply() async {
        let now = RFC3339.nowMs
        let declared: [String: ScheduleStore.Definition]
        do {
            declared = try ScriptSchedules.read(await script.scheduleTable(), now: now)
        } catch {
            logger.error("generate.lua: global 'schedules': \(error); the script's schedules stay as they are",
                         metadata: [LogKey.script: "\(script.path)"])
            return
        }
        let plan = ScriptSchedules.plan(declared: declared, existing: store.clusterSchedules().map(\.schedule), now: now)
        var failed = 0
        for id in plan.put {
            guard let definition = declared[id] else { continue }
            do {
                _ = try await store.put(id: id, definition)
            } catch {
                failed += 1
                logger.error("generate.lua: schedule '\(id)' could not be stored: \(error)", metadata: [LogKey.schedule: "\(id)"])
            }
        }
        for id in plan.remove {
            do {
                try await store.cancel(id: id)
            } catch {
                failed += 1
                logger.error("generate.lua: schedule '\(id)' could not be removed: \(error)", metadata: [LogKey.schedule: "\(id)"])
            }
        }
        if !plan.put.isEmpty || !plan.remove.isEmpty || failed > 0 {
            logger.notice("generate.lua schedules applied: \(declared.count) declared, \(plan.put.count) stored, \(plan.remove.count) removed, \(failed) failed",
                          metadata: [LogKey.script: "\(script.path)"])
        }
    }
}
