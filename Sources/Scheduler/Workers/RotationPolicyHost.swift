import Logging

/// The group's `rotate.lua` state: loaded from the catalog (again after the
/// catalog changed), asked `rotate(ctx)` at a slice boundary, finished at
/// close. It knows nothing of the coordinator: the caller builds `ctx`.
///
/// Not Sendable: used only on the coordinator's thread (a `lua_State`
/// stays on one thread).
final class RotationPolicyHost {
    private let group: String
    private let catalog: ScriptCatalog
    private let logger: Logger
    private var policy: LuaState?
    /// The catalog generation last loaded from.
    private var generation = 0

    init(group: String, catalog: ScriptCatalog, logger: Logger) {
        self.group = group
        self.catalog = catalog
        self.logger = logger
    }

    /// Whether the rules should ask `rotate(ctx)`: a script is loaded, or
    /// the catalog changed since (it may bring one).
    var isActive: Bool { policy != nil || generation != catalog.generation }

    /// The script's name, for log lines about its answers.
    var script: String { policy?.script ?? ScriptCatalog.rotate }

    /// (Re)creates the state from the catalog. Not strict (a reload): a
    /// failure keeps the old state.
    func load(strict: Bool) throws {
        generation = catalog.generation
        guard let source = catalog.source(ScriptCatalog.rotate) else {
            finish()
            return
        }
        if source.version == policy?.version { return }
        do {
            let bindings = ScriptBindings(script: source.path, worker: "\(group)-coordinator", group: group, logger: logger,
                                          features: catalog.features.map(\.off))
            let fresh = try LuaState.load(source: source, bindings: bindings, limits: catalog.limits)
            finish()
            policy = fresh
            if !strict { logger.info("switched to rotate.lua version \(source.version)", metadata: [LogKey.group: "\(group)"]) }
        } catch {
            if strict { throw error }
            catalog.countError(script: ScriptCatalog.rotate, hook: "init")
            logger.error("could not switch rotate.lua, the old version stays: \(error)", metadata: [LogKey.group: "\(group)"])
        }
    }

    /// Runs the script's `shutdown()` (a failure is counted) and drops the state.
    func finish() {
        if policy?.finish() != nil { catalog.countError(script: ScriptCatalog.rotate, hook: "shutdown") }
        policy = nil
    }

    /// `rotate(ctx)`'s answer, `context` built only if the script is asked.
    func answer(context: () -> LuaValue) -> PolicyAnswer {
        if generation != catalog.generation { try? load(strict: false) }
        guard let policy, policy.hasFunction("rotate") else { return .useDefault }
        let started = ContinuousClock.now
        defer { catalog.recordCall(script: ScriptCatalog.rotate, hook: "rotate", .now - started) }
        let answer: LuaValue
        do {
            answer = try policy.call("rotate", [context()], results: 1)[0]
        } catch {
            catalog.countError(script: ScriptCatalog.rotate, hook: "rotate")
            return .invalid("\(error)")
        }
        return LuaRotationPolicy.read(answer)
    }
}

/// `rotate.lua` as the rules' policy: `rotate(ctx)` with the context of the
/// report being decided, its answer read into a `PolicyAnswer` (types only;
/// the rules check it against the state). Runs on the coordinator's thread.
struct LuaRotationPolicy: RotationPolicy {
    let host: RotationPolicyHost
    /// `ctx` for the rules' state as the policy is asked (the coordinator's
    /// own copy is being changed at that moment).
    let context: (RotationState) -> LuaValue

    func answer(_ question: RotationQuestion, in state: RotationState) -> PolicyAnswer {
        host.answer { context(state) }
    }
    /// The shape of an answer: nil, or `{worker=string, topic=string?,
    /// partition=integer?, slice_ms=integer?, lane=integer?}`.
    static func read(_ answer: LuaValue) -> PolicyAnswer {
        func invalid(_ message: String) -> PolicyAnswer { .invalid("rotate(): \(message)") }
        if case .nil = answer { return .useDefault }
        guard case .table = answer else { return invalid("must return nil or a table, got \(answer.typeName)") }
        guard case .string(let worker) = answer["worker"] else { return invalid("field 'worker' must name a worker, got \(answer["worker"].typeName)") }
        var topic: String?
        switch answer["topic"] {
        case .nil: break
        case .string(let name): topic = name
        default: return invalid("field 'topic' must be a string")
        }
        var partition: Int64?
        if case .nil = answer["partition"] {} else {
            guard let number = answer["partition"].intValue else { return invalid("field 'partition' must be an integer") }
            partition = number
        }
        var sliceMs: Int64?
        if case .nil = answer["slice_ms"] {} else {
            guard let value = answer["slice_ms"].intValue else { return invalid("field 'slice_ms' must be a positive integer") }
            sliceMs = value
        }
        var lane: Int64?
        if case .nil = answer["lane"] {} else {
            guard let number = answer["lane"].intValue, number >= 0 else { return invalid("field 'lane' must be a non-negative integer") }
            lane = number
        }
        return .pick(worker: worker, topic: topic, partition: partition, sliceMs: sliceMs, lane: lane)
    }
}
