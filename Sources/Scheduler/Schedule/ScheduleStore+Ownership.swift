/// What this daemon owns of the schedule topic, as the API, the health
/// answer and the cluster report show it: read from the book in one lock,
/// so callers outside `Schedule/` never reach into the table.
struct ScheduleOwnership: Sendable {
    /// The schedule partitions this daemon holds, loading or live, in order.
    let partitions: [Int32]
    /// Of those, the ones read to their end (firing).
    let live: Set<Int32>
    /// Schedules in the partitions it holds.
    let count: Int
}

extension ScheduleStore {
    /// This daemon's share of the schedules now.
    var ownership: ScheduleOwnership {
        book.read { table in
            ScheduleOwnership(partitions: table.partitions.keys.sorted(),
                              live: Set(table.partitions.filter { $0.value == .live }.keys), count: table.count)
        }
    }
}
