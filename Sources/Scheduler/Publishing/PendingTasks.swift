import Foundation

/// Tasks handed to the producer that the broker has not acknowledged yet,
/// in submission order (`GET /tasks/pending`).
final class PendingTasks: Sendable {
    // Threading rule: all state inside `state.withLock`.
    private let state = LockedValue<(next: UInt64, tasks: [UInt64: TaskSpec])>((1, [:]))

    /// Records `task`; returns its ticket for `remove`.
    func add(_ task: TaskSpec) -> UInt64 {
        state.withLock { value in
            let ticket = value.next
            value.next += 1
            value.tasks[ticket] = task
            return ticket
        }
    }

    /// Forgets a task once it was acknowledged or failed.
    func remove(_ ticket: UInt64) {
        state.withLock { _ = $0.tasks.removeValue(forKey: ticket) }
    }

    /// The pending tasks, oldest first.
    var snapshot: [TaskSpec] {
        state.withLock { value in value.tasks.sorted { $0.key < $1.key }.map(\.value) }
    }

    var count: Int { state.withLock { $0.tasks.count } }
}
