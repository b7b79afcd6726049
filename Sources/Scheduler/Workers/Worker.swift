import CoreMetrics
import Foundation
import Logging
import Synchronization

/// A member of a group's pool: its own thread and its own `process.lua`
/// state, running one lease at a time. Id `<group>-<n>`.
final class Worker: @unchecked Sendable {
    // Safe because `script` is created, used and dropped only on `thread`;
    // leases run as jobs on `thread`, one after another.
    let id: String
    let index: Int
    let environment: WorkerEnvironment
    private let thread: DedicatedThread
    var script: LuaState?
    /// The catalog generation `script` was made from.
    var scriptGeneration = 0
    /// Counters this worker increments per emitted message, cached on its
    /// thread so the message path takes no lock to find them.
    private var counterCache: [String: CoreMetrics.Counter] = [:]
    /// True while a lease runs on the thread (read by the shutdown watchdog).
    private let leaseRunning = Atomic<Bool>(false)

    /// True while the worker is running a lease.
    var isRunningLease: Bool { leaseRunning.load(ordering: .relaxed) }

    /// The per-topic publish counter `name`, from this worker's cache.
    func publishedCounter(_ name: String, topic: String) -> CoreMetrics.Counter {
        let key = name + "\u{0}" + topic
        if let cached = counterCache[key] { return cached }
        let counter = environment.metrics.counter(name, [("topic", topic)])
        counterCache[key] = counter
        return counter
    }

    /// Starts the worker's thread and loads `process.lua` on it.
    static func start(index: Int, environment: WorkerEnvironment) async throws -> Worker {
        let id = "\(environment.group.name)-\(index)"
        let worker = Worker(id: id, index: index, environment: environment, thread: DedicatedThread(name: "worker-\(id)"))
        let catalog = environment.catalog
        guard let source = catalog.source(ScriptCatalog.process) else {
            throw LuaError(script: catalog.directory, line: nil, message: "process.lua is missing")
        }
        let generation = catalog.generation
        do {
            try await worker.thread.run { [worker] in
                worker.script = try worker.makeState(source)
                worker.scriptGeneration = generation
            }
        } catch {
            worker.thread.stop()
            throw error
        }
        return worker
    }

    private func makeState(_ source: ScriptSource) throws -> LuaState {
        let bindings = ScriptBindings(script: source.path, worker: id, group: environment.group.name, logger: environment.logger,
                                      features: environment.catalog.features.map(\.inWorkers))
        return try LuaState.load(source: source, bindings: bindings, limits: environment.catalog.limits)
    }

    /// On the worker's thread, between two messages: after a reload, switch
    /// to the new process.lua (the old state's `shutdown()` runs first; if the
    /// new state cannot start, the old one stays).
    func refreshScript() {
        let catalog = environment.catalog
        let current = catalog.generation
        guard current != scriptGeneration else { return }
        scriptGeneration = current
        guard let source = catalog.source(ScriptCatalog.process), source.version != script?.version else { return }
        do {
            let fresh = try makeState(source)
            if script?.finish() != nil { environment.catalog.countError(script: ScriptCatalog.process, hook: "shutdown") }
            script = fresh
            environment.logger.info("switched to process.lua version \(source.version)", metadata: logMetadata)
        } catch {
            catalog.countError(script: ScriptCatalog.process, hook: "init")
            environment.logger.error("could not switch process.lua, the old version stays: \(error)", metadata: logMetadata)
        }
    }

    private init(id: String, index: Int, environment: WorkerEnvironment, thread: DedicatedThread) {
        self.id = id
        self.index = index
        self.environment = environment
        self.thread = thread
    }

    /// Runs `lease` on the worker's thread; slice boundaries and the lease's
    /// end are reported through `onReport`.
    func begin(_ lease: Lease, feed: LaneFeed, onReport: @escaping @Sendable (SliceReport) -> Void) {
        thread.submit { [self] in
            leaseRunning.store(true, ordering: .relaxed)
            defer { leaseRunning.store(false, ordering: .relaxed) }
            runLease(lease, feed: feed, onReport: onReport)
        }
    }

    /// Drops the Lua state and ends the thread (after any running lease).
    /// Returns false, leaving the thread, if that did not happen within `limit`.
    @discardableResult
    func close(within limit: Duration = .seconds(3600)) async -> Bool {
        let closed = await thread.run(within: limit) { [self] () -> Bool in
            if script?.finish() != nil { environment.catalog.countError(script: ScriptCatalog.process, hook: "shutdown") }
            script = nil
            return true
        } != nil
        if closed { thread.stop() }
        return closed
    }

    var logMetadata: Logger.Metadata {
        [LogKey.group: "\(environment.group.name)", LogKey.worker: "\(id)"]
    }
}
