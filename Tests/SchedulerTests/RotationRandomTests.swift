import Testing
@testable import Scheduler

/// SplitMix64: a small seeded generator, so a failing sequence can be replayed.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &self) < percent }
}

/// A random policy: mostly the default, sometimes a valid or invalid answer.
final class RandomPolicy: RotationPolicy {
    var random: SeededRandom
    init(seed: UInt64) { random = SeededRandom(state: seed ^ 0x5151) }
    func answer(_ question: RotationQuestion, in state: RotationState) -> PolicyAnswer {
        switch Int.random(in: 0..<10, using: &random) {
        case 0: return .invalid("rotate(): boom")
        case 1: return .pick(worker: "g-\(Int.random(in: 0...3, using: &random))")
        case 2: return .pick(worker: "g-\(Int.random(in: 0...3, using: &random))", topic: ["A", "B"].randomElement(using: &random),
                             partition: Int64.random(in: 0...2, using: &random), sliceMs: Int64.random(in: -1...500, using: &random))
        case 3: return .pick(worker: "g-\(Int.random(in: 0...3, using: &random))", topic: "B")
        default: return .useDefault
        }
    }
}

/// The workers and the group protocol around a `RotationState`, played at
/// random: leases run, announce, hand over and end as `runLease` does;
/// reports reach the state in order per worker but interleaved; the group
/// assigns and revokes (one revocation at a time, as the poll thread blocks
/// in it); commits are refused. Every rule breach is recorded with the seed.
struct RotationWorld {
    enum Phase { case waiting, running, announced, released }
    struct Sim {
        let grant: LeaseGrant
        var phase: Phase
        var stop: SliceEndReason?
        var renewed = false
    }

    let seed: UInt64
    var random: SeededRandom
    var state: RotationState
    let facts = TableFacts()
    let policy: RandomPolicy
    var now = ContinuousClock.now
    var sims: [UInt64: Sim] = [:]
    var outbox: [Int: [LeaseReport]] = [:]
    var processed: [SlotKey: Int64] = [:]
    var assigned: Set<SlotKey> = []
    var revoking: (ticket: Int, slots: Set<SlotKey>)?
    var tickets = 0
    /// The pending revocation took slots that leases held.
    var revokeHadLeases = false
    var stopped = false
    var commitsHeld = false
    var quiesced = false
    var failures: [String] = []
    /// How often each kind of thing happened, so the test shows it reached them.
    var seen: [String: Int] = [:]
    let universe = ["A0", "A1", "A2", "B0", "B1"].map(slot)

    init(seed: UInt64) {
        self.seed = seed
        random = SeededRandom(state: seed)
        policy = RandomPolicy(seed: seed)
        var rules = RotationRules(group: "g", topics: ["A", "B"], workers: (0..<3).map { "g-\($0)" }, sliceMs: 100)
        rules.cooperative = seed % 2 == 0
        state = RotationState(rules: rules)
    }

    mutating func fail(_ message: String) { failures.append("seed \(seed): \(message)") }

    mutating func send(_ event: RotationEvent) {
        let decisions = state.handle(event, at: now, facts: facts, policy: policy)
        for decision in decisions { carryOut(decision, event: event) }
        checkInvariants()
    }

    mutating func carryOut(_ decision: RotationDecision, event: RotationEvent) {
        switch decision {
        case .grant(let grant):
            seen[grant.handoffFrom == nil ? "grant" : "handoff", default: 0] += 1
            if state.slots[grant.slot]?.revoked != false { fail("grant on revoked or unknown \(grant.slot) after \(event)") }
            if !state.mayGrant { fail("grant of \(grant.slot) while paused or stopping") }
            if case .revoking = event { fail("grant while revoking") }
            let others = sims.values.filter { $0.grant.slot == grant.slot && $0.phase != .released }
            if others.contains(where: { $0.grant.id != grant.handoffFrom }) { fail("grant of \(grant.slot) while another lease holds it") }
            sims[grant.id] = Sim(grant: grant, phase: grant.handoffFrom == nil ? .running : .waiting)
        case .renew(let id, _):
            guard var sim = sims[id] else { return }
            seen["renew", default: 0] += 1
            if state.slots[sim.grant.slot]?.revoked != false { fail("renewal on revoked \(sim.grant.slot)") }
            sim.renewed = true
            sims[id] = sim
        case .stop(let id, let reason):
            sims[id]?.stop = reason
        case .holdCommits(let held):
            commitsHeld = held
        case .commit(let positions):
            seen["commit", default: 0] += 1
            if commitsHeld { fail("commit while the group rebalances") }
            for position in positions {
                if position.offset > processed[position.slot, default: -1] { fail("commit of \(position.slot) at \(position.offset) ahead of processed \(processed[position.slot, default: -1])") }
                facts.positions[position.slot]?.committed = position.offset
            }
        case .resendCommits(let slots):
            for slot in slots { facts.positions[slot]?.committed = -1 }
        case .release(let ticket, let slots):
            guard let pending = revoking, pending.ticket == ticket else { fail("release of unknown ticket \(ticket)"); return }
            if sims.values.contains(where: { slots.contains($0.grant.slot) && $0.phase != .released }) { fail("released \(slots) while a worker still holds one") }
            if state.leases.values.contains(where: { slots.contains($0.slot) }) { fail("released \(slots) while the state still has a lease on one") }
            if revokeHadLeases { seen["release after leases", default: 0] += 1 }
            assigned.subtract(pending.slots)
            revoking = nil
        case .quiesced:
            if !state.leases.isEmpty || sims.values.contains(where: { $0.phase != .released }) { fail("quiesced with leases running") }
            quiesced = true
        case .note(.pauseGaveUp):
            seen["pause gave up", default: 0] += 1
        case .note(.paused):
            seen["paused", default: 0] += 1
        case .note(.answerRejected):
            seen["answer rejected", default: 0] += 1
        case .note:
            break
        }
    }

    mutating func checkInvariants() {
        for slot in universe {
            let running = sims.values.filter { $0.grant.slot == slot && ($0.phase == .running || $0.phase == .announced) }
            if running.count > 1 { fail("\(running.count) leases process \(slot) at once") }
            // Several leases on one slot only as a chain of handoffs from the
            // holder back (a predecessor's final report may still be on its way).
            let held = state.leases.values.filter { $0.slot == slot && !$0.released }
            var chain: Set<UInt64> = []
            var link = state.slots[slot]?.holder.flatMap { state.leases[$0] }.map(\.id)
            while let id = link, let lease = state.lease(id), lease.slot == slot {
                chain.insert(id)
                link = lease.handoffFrom
            }
            if held.contains(where: { !chain.contains($0.id) }) { fail("leases on \(slot) outside the holder's handoff chain: \(held.map(\.id)) vs \(chain)") }
            if let position = facts.positions[slot], position.committed > processed[slot, default: -1] { fail("\(slot) committed ahead of processed") }
        }
    }

    /// Moves lease `id` on as its worker would.
    mutating func advance(_ id: UInt64) {
        guard var sim = sims[id] else { return }
        let grant = sim.grant
        func end(_ reason: SliceEndReason, _ sim: inout Sim) {
            sim.phase = .released
            outbox[grant.worker, default: []].append(LeaseReport(lease: id, worker: grant.worker, slot: grant.slot, reason: reason, final: true, endedAt: now))
        }
        switch sim.phase {
        case .released:
            return
        case .waiting:
            let predecessor = grant.handoffFrom.flatMap { sims[$0] }
            if predecessor == nil || predecessor?.phase == .released { sim.phase = .running }
        case .running, .announced:
            if let stop = sim.stop {
                end(stop, &sim)
            } else if sim.phase == .announced && sims.values.contains(where: { $0.grant.handoffFrom == id }) {
                end(.slice, &sim)
            } else if sim.phase == .announced && sim.renewed {
                sim.renewed = false
                sim.phase = .running
            } else if sim.phase == .running {
                switch Int.random(in: 0..<10, using: &random) {
                case 0...5:
                    processed[grant.slot, default: -1] += Int64.random(in: 1...5, using: &random)
                    let committed = facts.positions[grant.slot]?.committed ?? -1
                    facts.positions[grant.slot] = (processed[grant.slot]!, committed)
                case 6...8:
                    sim.phase = .announced
                    outbox[grant.worker, default: []].append(LeaseReport(lease: id, worker: grant.worker, slot: grant.slot, reason: .slice, final: false, endedAt: now))
                default:
                    end(.drained, &sim)
                }
            }
        }
        sims[id] = sim
    }

    /// Delivers the oldest report of a worker.
    mutating func deliver(_ worker: Int) {
        guard var queue = outbox[worker], !queue.isEmpty else { return }
        let report = queue.removeFirst()
        outbox[worker] = queue
        if report.final { sims[report.lease] = nil }
        send(.report(report))
    }

    /// One random step.
    mutating func step() {
        now += .milliseconds(Int.random(in: 0...300, using: &random))
        let live = sims.keys.sorted()
        let pendingWorkers = outbox.filter { !$0.value.isEmpty }.keys.sorted()
        let choice = Int.random(in: 0..<100, using: &random)
        let poll = revoking == nil  // the poll thread is blocked inside a revocation
        switch choice {
        case 0..<30 where !live.isEmpty: advance(live.randomElement(using: &random)!)
        case 30..<55 where !pendingWorkers.isEmpty: deliver(pendingWorkers.randomElement(using: &random)!)
        case 55..<65 where poll: send(.tick)
        case 65..<71 where poll && !stopped:
            let fresh = universe.filter { !assigned.contains($0) && random.chance(50) }
            assigned.formUnion(fresh)
            for slot in fresh { facts.positions[slot] = (processed[slot, default: -1], facts.positions[slot]?.committed ?? -1) }
            send(.assigned(fresh))
        case 71..<76 where poll && !assigned.isEmpty:
            let taken = Set(assigned.filter { _ in random.chance(50) })
            tickets += 1
            revoking = (tickets, taken)
            revokeHadLeases = sims.values.contains { taken.contains($0.grant.slot) }
            send(.revoking(taken, ticket: tickets))
        case 76..<80 where poll: send(.commitRefused(rebalance: random.chance(70)))
        case 80..<95:
            let slot = universe.randomElement(using: &random)!
            if random.chance(60) { facts.work.insert(slot) } else { facts.work.remove(slot) }
            // Its messages are fetched already, or still on the broker.
            if random.chance(50) { facts.unfetched.insert(slot) } else { facts.unfetched.remove(slot) }
        case 95..<96 where !stopped && random.chance(20):
            stopped = true
            send(.stop)
        default: break
        }
    }

    /// Lets every lease and report run out; then everything asked must have happened.
    mutating func drain() {
        // A pending revocation needs only the workers and their reports.
        for _ in 0..<1000 where revoking != nil {
            sims.keys.sorted().forEach { advance($0) }
            outbox.keys.sorted().forEach { deliver($0) }
        }
        if revoking != nil { fail("revocation #\(revoking!.ticket) never released") }
        if !stopped {
            stopped = true
            send(.stop)
        }
        for _ in 0..<10_000 where !quiesced {
            sims.keys.sorted().forEach { advance($0) }
            outbox.keys.sorted().forEach { deliver($0) }
        }
        if !quiesced { fail("never quiesced after stop: \(state.leases.count) leases, \(sims.count) running") }
    }
}

@Suite("Rotation rules under random event sequences", .sharesMachine)
struct RotationRandomTests {
    @Test("invariants hold after every step of 2,000 random sequences")
    func randomSequences() {
        var failures: [String] = []
        var seen: [String: Int] = [:]
        for seed in UInt64(1)...2000 {
            var world = RotationWorld(seed: seed)
            for _ in 0..<150 { world.step() }
            world.drain()
            failures += world.failures.prefix(3)
            seen.merge(world.seen, uniquingKeysWith: +)
            if failures.count > 10 { break }
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        // The sequences reach every kind of transition (not just idle ones).
        for kind in ["grant", "handoff", "renew", "commit", "release after leases", "paused", "pause gave up", "answer rejected"] {
            #expect(seen[kind, default: 0] > 20, "only \(seen[kind, default: 0]) \(kind) in 2,000 sequences: \(seen)")
        }
    }
}
