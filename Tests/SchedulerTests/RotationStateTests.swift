import Testing
@testable import Scheduler

/// One step of a rule: what happens, and the decisions expected (as `RotationRig` lines).
enum Act: Sendable, CustomStringConvertible {
    case assign([String]), assignIdle([String]), work([String]), noWork([String])
    /// Messages wait on the broker, none fetched yet.
    case onBroker([String])
    case boundary(Int), end(Int, SliceEndReason), revoke([String], ticket: Int, lost: Bool = false, assignFailed: Bool = false)
    case refused(rebalance: Bool), tick(afterMs: Int), stop, answer(PolicyAnswer)
    /// Commit position of a slot: committable, committed.
    case position(String, Int64, Int64)

    var description: String {
        switch self {
        case .assign(let slots): "assign \(slots)"
        case .assignIdle(let slots): "assign without work \(slots)"
        case .work(let slots): "work on \(slots)"
        case .noWork(let slots): "no work on \(slots)"
        case .onBroker(let slots): "work on the broker only for \(slots)"
        case .boundary(let worker): "w\(worker) at its slice boundary"
        case .end(let worker, let reason): "w\(worker) ends (\(reason.rawValue))"
        case .revoke(let slots, let ticket, let lost, let failed): "revoke #\(ticket) \(slots)\(lost ? " (lost)" : "")\(failed ? " (assign failed)" : "")"
        case .refused(let rebalance): "commit refused\(rebalance ? " (rebalance)" : "")"
        case .tick(let ms): "tick after \(ms) ms"
        case .stop: "stop"
        case .answer(let answer): "rotate() will answer \(answer)"
        case .position(let name, let committable, let committed): "\(name) committable \(committable), committed \(committed)"
        }
    }
}

/// A rotation rule of the README, as steps and the decisions each must produce.
struct Rule: Sendable, CustomTestStringConvertible {
    let text: String
    var workers = 2
    var topics = ["A"]
    var eager = true
    let steps: [(Act, [String])]
    var testDescription: String { text }

    init(_ text: String, workers: Int = 2, topics: [String] = ["A"], eager: Bool = true, _ steps: [(Act, [String])]) {
        self.text = text
        self.workers = workers
        self.topics = topics
        self.eager = eager
        self.steps = steps
    }

    func run() {
        var rig = RotationRig(workers: workers, topics: topics, cooperative: !eager)
        for (index, (act, expected)) in steps.enumerated() {
            let got: [String]
            switch act {
            case .assign(let names):
                rig.facts.work.formUnion(names.map(slot))
                got = rig.send(.assigned(names.map(slot)))
            case .assignIdle(let names): got = rig.send(.assigned(names.map(slot)))
            case .work(let names):
                rig.facts.work.formUnion(names.map(slot))
                rig.facts.unfetched.subtract(names.map(slot))
                got = []
            case .onBroker(let names):
                rig.facts.work.formUnion(names.map(slot))
                rig.facts.unfetched.formUnion(names.map(slot))
                got = []
            case .noWork(let names): rig.facts.work.subtract(names.map(slot)); got = []
            case .boundary(let worker): got = rig.boundary(worker)
            case .end(let worker, let reason): got = rig.end(worker, reason)
            case .revoke(let names, let ticket, let lost, let failed):
                got = rig.send(.revoking(Set(names.map(slot)), ticket: ticket, lost: lost, assignFailed: failed))
            case .refused(let rebalance): got = rig.send(.commitRefused(rebalance: rebalance))
            case .tick(let ms): got = rig.send(.tick, after: ms)
            case .stop: got = rig.send(.stop)
            case .answer(let answer): rig.policy.answers.append(answer); got = []
            case .position(let name, let committable, let committed): rig.facts.positions[slot(name)] = (committable, committed); got = []
            }
            #expect(got == expected, "step \(index + 1): \(act)")
        }
    }
}

@Suite("Rotation rules (RotationState, no broker)", .sharesMachine)
struct RotationStateTests {
    @Test("the default policy", arguments: [
        Rule("at a slice boundary the next idle worker takes the same partition, make-before-break", workers: 3, [
            (.assign(["A0", "A1"]), ["grant w1 A0", "grant w2 A1"]),
            (.boundary(1), ["grant w0 A0 from w1"]),
            (.end(1, .slice), []),
        ]),
        Rule("when no other worker is idle, the same worker continues", [
            (.assign(["A0", "A1"]), ["grant w1 A0", "grant w0 A1"]),
            (.boundary(1), ["renew w1 100"]),
        ]),
        Rule("a lease that ran dry hands nothing on; new work is granted at the next tick", [
            (.assign(["A0", "A1"]), ["grant w1 A0", "grant w0 A1"]),
            (.noWork(["A0"]), []),
            (.end(1, .drained), []),
            (.work(["A0"]), []),
            (.tick(afterMs: 50), ["grant w1 A0"]),
        ]),
        Rule("a worker whose partition ran dry takes another free partition with work", workers: 1, [
            (.assign(["A0", "A1"]), ["grant w0 A0"]),
            (.noWork(["A0"]), []),
            (.end(0, .drained), ["grant w0 A1"]),
            (.work(["A0"]), []),
            (.noWork(["A1"]), []),
            (.end(0, .drained), ["grant w0 A0"]),
        ]),
        Rule("a partition given up in a rebalance and assigned again keeps its turn: the one never held comes first", workers: 1, [
            (.assign(["A0", "A1"]), ["grant w0 A0"]),
            (.revoke(["A0", "A1"], ticket: 1), ["stop w0 revoked"]),
            (.end(0, .revoked), ["release #1 A0 A1"]),
            (.assign(["A0", "A1"]), ["grant w0 A1"]),
        ]),
    ])
    func defaultPolicy(_ rule: Rule) { rule.run() }

    @Test("messages already fetched are taken before messages on the broker", arguments: [
        Rule("a worker whose partition ran dry takes a partition with fetched messages, not its own", workers: 1, [
            (.assign(["A0", "A1", "A2"]), ["grant w0 A0"]),
            (.onBroker(["A0", "A1"]), []),
            (.end(0, .drained), ["grant w0 A2"]),
        ]),
        Rule("with nothing fetched anywhere, the partition that ran dry is read again", workers: 1, [
            (.assign(["A0", "A1"]), ["grant w0 A0"]),
            (.onBroker(["A0", "A1"]), []),
            (.end(0, .drained), ["grant w0 A0"]),
        ]),
        Rule("an idle worker is given fetched messages first", workers: 2, [
            (.assignIdle(["A0", "A1", "A2"]), []),
            (.onBroker(["A0", "A1"]), []),
            (.work(["A2"]), []),
            (.tick(afterMs: 50), ["grant w1 A2", "grant w0 A0"]),
        ]),
        Rule("rotate() naming only a worker after a lease ran dry: fetched messages first", workers: 2, [
            (.assign(["A0", "A1", "A2"]), ["grant w1 A0", "grant w0 A1"]),
            (.onBroker(["A0"]), []),
            (.answer(.pick(worker: "g-1")), []),
            (.end(1, .drained), ["grant w1 A2"]),
        ]),
        Rule("rotate() naming a topic: a partition with fetched messages first", workers: 2, [
            (.assign(["A0", "A1", "A2"]), ["grant w1 A0", "grant w0 A1"]),
            (.onBroker(["A0"]), []),
            (.answer(.pick(worker: "g-1", topic: "A")), []),
            (.end(1, .drained), ["grant w1 A2"]),
        ]),
        Rule("at a slice boundary the partition stays with its holder's successor, fetched or not", workers: 3, [
            (.assign(["A0", "A1"]), ["grant w1 A0", "grant w2 A1"]),
            (.onBroker(["A0"]), []),
            (.boundary(1), ["grant w0 A0 from w1"]),
        ]),
    ])
    func fetchedFirst(_ rule: Rule) { rule.run() }

    @Test("workers are told when fetched messages wait on a partition nobody holds")
    func fetchedWaiting() {
        var rig = RotationRig(workers: 1, topics: ["A", "B"])
        rig.assign("A0", "A1", "B0")
        #expect(rig.state.leases[0]?.slot == slot("A0"))
        #expect(rig.state.fetchedWaiting(facts: rig.facts), "A1 is free with fetched messages")
        rig.facts.unfetched.insert(slot("A1"))
        #expect(!rig.state.fetchedWaiting(facts: rig.facts), "A1's messages are still on the broker; B0 is not the current topic")
        rig.facts.unfetched.remove(slot("A1"))
        rig.send(.commitRefused(rebalance: true))
        #expect(!rig.state.fetchedWaiting(facts: rig.facts), "paused for a rebalance: nothing would be granted")
    }

    @Test("topics in turn", arguments: [
        Rule("once every worker had a slice on a topic, the group moves to the next", topics: ["A", "B"], [
            (.assign(["A0", "B0"]), ["grant w1 A0"]),
            (.boundary(1), ["grant w0 A0 from w1"]),
            (.end(1, .slice), []),
            (.boundary(0), ["topic B", "stop w0 slice", "grant w1 B0"]),
            (.end(0, .slice), []),
        ]),
        Rule("a topic with nothing to do is skipped", workers: 1, topics: ["A", "B", "C"], [
            (.assign(["A0", "B0", "C0"]), ["grant w0 A0"]),
            (.noWork(["B0"]), []),
            (.boundary(0), ["topic C", "stop w0 slice"]),
            (.end(0, .slice), ["grant w0 C0"]),
        ]),
        Rule("the current topic is left at once when it has nothing to do", topics: ["A", "B"], [
            (.assignIdle(["A0"]), []),
            (.assign(["B0"]), ["topic B", "grant w1 B0"]),
        ]),
    ])
    func topicsInTurn(_ rule: Rule) { rule.run() }

    @Test("valid rotate() answers are followed", arguments: [
        Rule("a named idle worker takes the partition over", workers: 4, [
            (.assign(["A0", "A1"]), ["grant w1 A0", "grant w2 A1"]),
            (.answer(.pick(worker: "g-0")), []),
            (.boundary(1), ["grant w0 A0 from w1"]),
        ]),
        Rule("the holder named again, with its own slice length, continues", workers: 3, [
            (.assign(["A0", "A1"]), ["grant w1 A0", "grant w2 A1"]),
            (.answer(.pick(worker: "g-1", sliceMs: 250)), []),
            (.boundary(1), ["renew w1 250"]),
        ]),
        Rule("the holder named with another partition lets go and then takes it", [
            (.assign(["A0", "A1", "A2"]), ["grant w1 A0", "grant w0 A1"]),
            (.answer(.pick(worker: "g-1", topic: "A", partition: 2)), []),
            (.boundary(1), ["stop w1 slice"]),
            (.end(1, .slice), ["grant w1 A2"]),
        ]),
    ])
    func validAnswers(_ rule: Rule) { rule.run() }

    @Test("an invalid rotate() answer is logged and the default policy applies", arguments: [
        (PolicyAnswer.pick(worker: "nobody"), "rotate(): no worker 'nobody' in group g"),
        (.pick(worker: "g-2"), "rotate(): worker 'g-2' is busy"),
        (.pick(worker: "g-0", sliceMs: 0), "rotate(): field 'slice_ms' must be a positive integer"),
        (.pick(worker: "g-0", sliceMs: 86_400_001), "rotate(): field 'slice_ms' must be a positive integer"),
        (.pick(worker: "g-0", topic: "A", partition: 7), "rotate(): partition A[7] is not assigned to this process"),
        (.pick(worker: "g-0", topic: "A", partition: 1), "rotate(): partition A[1] is held by another worker"),
        (.pick(worker: "g-0", topic: "Z"), "rotate(): topic 'Z' has no free partition with work here"),
        (.pick(worker: "g-0", partition: 1), "rotate(): field 'topic' must be a string when 'partition' is given"),
        (.invalid("rotate(): must return nil or a table, got number"), "rotate(): must return nil or a table, got number"),
    ])
    func invalidAnswers(_ answer: PolicyAnswer, _ message: String) {
        Rule("invalid", workers: 3, [
            (.assign(["A0", "A1"]), ["grant w1 A0", "grant w2 A1"]),
            (.answer(answer), []),
            (.boundary(1), ["rejected \(message)", "grant w0 A0 from w1"]),
        ]).run()
    }

    @Test("rotate()'s table is read by shape; the rules check the rest", arguments: [
        (LuaValue.nil, PolicyAnswer.useDefault),
        (.integer(3), .invalid("rotate(): must return nil or a table, got number")),
        (.table(["worker": .integer(1)]), .invalid("rotate(): field 'worker' must name a worker, got number")),
        (.table(["worker": .string("g-1"), "partition": .string("x"), "topic": .string("A")]), .invalid("rotate(): field 'partition' must be an integer")),
        (.table(["worker": .string("g-1"), "slice_ms": .string("soon")]), .invalid("rotate(): field 'slice_ms' must be a positive integer")),
        (.table(["worker": .string("g-1"), "topic": .string("A"), "partition": .integer(2), "slice_ms": .integer(40)]),
         .pick(worker: "g-1", topic: "A", partition: 2, sliceMs: 40)),
    ])
    func readsAnswers(_ value: LuaValue, _ expected: PolicyAnswer) {
        #expect(LuaRotationPolicy.read(value) == expected)
    }
}
