@testable import Scheduler

/// `A0` is partition 0 of topic A (lane 0).
func slot(_ name: String) -> SlotKey {
    SlotKey(TopicPartition(topic: String(name.prefix { $0.isLetter }), partition: Int32(name.drop { $0.isLetter })!))
}

/// Facts from a table: which slots have work (fetched, unless the slot is
/// in `unfetched`), and commit positions.
final class TableFacts: RotationFacts {
    var work: Set<SlotKey> = []
    /// Slots whose work is still on the broker: nothing fetched yet.
    var unfetched: Set<SlotKey> = []
    var positions: [SlotKey: (committable: Int64, committed: Int64)] = [:]
    func hasWork(_ slot: SlotKey) -> Bool { work.contains(slot) }
    func hasFetched(_ slot: SlotKey) -> Bool { work.contains(slot) && !unfetched.contains(slot) }
    func commitPosition(_ slot: SlotKey) -> (committable: Int64, committed: Int64) { positions[slot] ?? (-1, -1) }
}

/// A policy answering from a list (then the default policy); it records the questions.
final class TablePolicy: RotationPolicy {
    var answers: [PolicyAnswer] = []
    var asked: [RotationQuestion] = []
    func answer(_ question: RotationQuestion, in state: RotationState) -> PolicyAnswer {
        asked.append(question)
        return answers.isEmpty ? .useDefault : answers.removeFirst()
    }
}

/// A rotation state with table facts and policy, a clock moved by hand, and
/// decisions written as short lines (`grant w1 A0 from w0`, `stop w0 revoked`).
struct RotationRig {
    var state: RotationState
    let facts = TableFacts()
    let policy = TablePolicy()
    var now = ContinuousClock.now
    /// Worker of each lease granted so far.
    private(set) var owners: [UInt64: Int] = [:]
    /// Every decision so far, as lines.
    private(set) var log: [String] = []

    init(workers: Int, topics: [String] = ["A"], sliceMs: Int = 100, cooperative: Bool = false) {
        var rules = RotationRules(group: "g", topics: topics, workers: (0..<workers).map { "g-\($0)" }, sliceMs: sliceMs)
        rules.cooperative = cooperative
        state = RotationState(rules: rules)
    }

    /// Applies `event` after `ms` milliseconds; commits and resends change
    /// the table's positions as the coordinator would. Notes are left out
    /// unless `notes`.
    @discardableResult
    mutating func send(_ event: RotationEvent, after ms: Int = 0, notes: Bool = false) -> [String] {
        now += .milliseconds(ms)
        let decisions = state.handle(event, at: now, facts: facts, policy: policy)
        var lines: [String] = []
        for decision in decisions {
            switch decision {
            case .grant(let grant):
                owners[grant.id] = grant.worker
                lines.append("grant w\(grant.worker) \(name(grant.slot))" + (grant.handoffFrom.map { " from w\(owners[$0]!)" } ?? ""))
            case .renew(let id, let sliceMs): lines.append("renew w\(owners[id]!) \(sliceMs)")
            case .stop(let id, let reason): lines.append("stop w\(owners[id]!) \(reason.rawValue)")
            case .commit(let positions):
                for position in positions { facts.positions[position.slot]?.committed = position.offset }
                lines.append("commit " + positions.map { "\(name($0.slot))@\($0.offset)" }.joined(separator: " "))
            case .resendCommits(let slots):
                for slot in slots { facts.positions[slot]?.committed = -1 }
                lines.append("resend " + slots.map(name).joined(separator: " "))
            case .holdCommits(let held): lines.append(held ? "hold commits" : "resume commits")
            case .release(let ticket, let slots): lines.append("release #\(ticket) " + slots.map(name).joined(separator: " "))
            case .quiesced(let slots): lines.append("quiesced " + slots.map(name).joined(separator: " "))
            case .note(.answerRejected(let message)): lines.append("rejected \(message)")
            case .note(.paused): lines.append("paused")
            case .note(.commitsHeld): lines.append("commits held")
            case .note(.pauseGaveUp): lines.append("gave up")
            case .note(.topicMoved(let topic)): lines.append("topic \(topic)")
            case .note(.assigned): if notes { lines.append("\(decision)") }
            }
        }
        log += lines
        return lines
    }

    private func name(_ slot: SlotKey) -> String { "\(slot.topic)\(slot.partition.partition)" + (slot.lane > 0 ? "#\(slot.lane)" : "") }

    /// The lease worker `worker` runs now.
    func lease(of worker: Int) -> LeaseRecord { state.leases[worker]! }

    /// Worker `worker` reached its slice boundary and goes on in overtime.
    @discardableResult
    mutating func boundary(_ worker: Int, reason: SliceEndReason = .slice, after ms: Int = 0, notes: Bool = false) -> [String] {
        let lease = lease(of: worker)
        return send(.report(LeaseReport(lease: lease.id, worker: worker, slot: lease.slot, reason: reason, final: false, endedAt: now + .milliseconds(ms))), after: ms, notes: notes)
    }

    /// Worker `worker` let go of its lease.
    @discardableResult
    mutating func end(_ worker: Int, _ reason: SliceEndReason, after ms: Int = 0, notes: Bool = false) -> [String] {
        let lease = lease(of: worker)
        return send(.report(LeaseReport(lease: lease.id, worker: worker, slot: lease.slot, reason: reason, final: true, endedAt: now + .milliseconds(ms))), after: ms, notes: notes)
    }

    /// Slots are assigned and have work.
    @discardableResult
    mutating func assign(_ names: String..., work: Bool = true) -> [String] {
        let slots = names.map(slot)
        if work { facts.work.formUnion(slots) }
        return send(.assigned(slots))
    }
}
