import Logging

extension RotationCoordinator {
    /// (Re)creates the `rotate.lua` state from the catalog, on the
    /// coordinator's thread. Not strict (a reload): a failure keeps the old state.
    func loadPolicy(strict: Bool) throws {
        policyGeneration = catalog.generation
        guard let source = catalog.source(ScriptCatalog.rotate) else {
            if policy?.finish() != nil { catalog.countError(script: ScriptCatalog.rotate, hook: "shutdown") }
            policy = nil
            return
        }
        if source.version == policy?.version { return }
        do {
            let bindings = ScriptBindings(script: source.path, worker: "\(group.name)-coordinator", group: group.name, logger: logger)
            let fresh = try LuaState.load(source: source, bindings: bindings, limits: catalog.limits)
            if policy?.finish() != nil { catalog.countError(script: ScriptCatalog.rotate, hook: "shutdown") }
            policy = fresh
            if !strict { logger.info("switched to rotate.lua version \(source.version)", metadata: [LogKey.group: "\(group.name)"]) }
        } catch {
            if strict { throw error }
            catalog.countError(script: ScriptCatalog.rotate, hook: "init")
            logger.error("could not switch rotate.lua, the old version stays: \(error)", metadata: [LogKey.group: "\(group.name)"])
        }
    }

    /// Logs what the rules noted.
    func log(_ note: RotationNote) {
        let metadata: Logger.Metadata = [LogKey.group: "\(group.name)"]
        switch note {
        case .assigned(let slots):
            // Partitions, not slots: with key lanes every partition brings `lanes` slots.
            let partitions = Set(slots.map(\.partition)).sorted().map(\.description).joined(separator: ", ")
            let lanes = group.lanes > 1 ? " (\(group.lanes) lanes each)" : ""
            logger.info("partitions assigned: \(partitions)\(lanes)", metadata: metadata)
        case .paused:
            logger.info("group is rebalancing: pausing leases and commits", metadata: metadata)
        case .commitsHeld:
            logger.info("group is rebalancing: commits wait for the next assignment", metadata: metadata)
        case .pauseGaveUp(let after):
            logger.warning("no assignment came \(after) after the group began rebalancing; resuming leases and commits", metadata: metadata)
        case .topicMoved(let topic):
            logger.debug("group moves to the next topic", metadata: metadata.merging([LogKey.topic: "\(topic)"]) { $1 })
        case .answerRejected(let message):
            let script = policy?.script ?? ScriptCatalog.rotate
            logger.warning("rotate() answer not used, default policy applies: \(message)", metadata: metadata.merging([LogKey.script: "\(script)"]) { $1 })
        }
    }
}

/// `rotate.lua` as the rules' policy: `rotate(ctx)` with the context of the
/// report being decided, its answer read into a `PolicyAnswer` (types only;
/// the rules check it against the state). Runs on the coordinator's thread.
struct LuaRotationPolicy: RotationPolicy {
    let coordinator: RotationCoordinator
    let report: SliceReport

    func answer(_ question: RotationQuestion, in state: RotationState) -> PolicyAnswer {
        if coordinator.policyGeneration != coordinator.catalog.generation { try? coordinator.loadPolicy(strict: false) }
        guard let policy = coordinator.policy, policy.hasFunction("rotate") else { return .useDefault }
        let catalog = coordinator.catalog
        let started = ContinuousClock.now
        defer { catalog.recordCall(script: ScriptCatalog.rotate, hook: "rotate", .now - started) }
        let answer: LuaValue
        do {
            answer = try policy.call("rotate", [coordinator.context(after: report, state: state)], results: 1)[0]
        } catch {
            catalog.countError(script: ScriptCatalog.rotate, hook: "rotate")
            return .invalid("\(error)")
        }
        return Self.read(answer)
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
