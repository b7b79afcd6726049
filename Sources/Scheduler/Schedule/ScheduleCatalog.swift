import Foundation

/// Every schedule of the cluster as this daemon last read it from the
/// schedule topic (all partitions, whoever owns them), for `GET /tasks` on
/// any daemon. A plain value; `ScheduleCatalogFollower` fills it.
///
/// Small per schedule, for a topic of a million: the id, the partition, the
/// next due time (the listing's order) and the record's JSON value as read
/// (decoded only when listed), one allocation besides the id. The owner's
/// `ScheduleTable` keeps the decoded schedules it fires; this keeps bytes.
struct ScheduleCatalog: Sendable {
    /// One schedule: where it lives, when it is due, its record.
    struct Entry: Sendable, Equatable {
        let partition: Int32
        let nextDueMs: Int64
        /// The record's value (the schedule as JSON).
        let record: [UInt8]
    }

    private(set) var entries: [String: Entry] = [:]
    /// Partitions read to their end at least once.
    private(set) var live: Set<Int32> = []
    /// The topic's partitions, once known.
    private(set) var partitions: [Int32] = []

    /// Schedules known.
    var count: Int { entries.count }

    /// True once every partition of the topic was read to its end.
    var isLive: Bool { !partitions.isEmpty && partitions.allSatisfy(live.contains) }

    /// The topic's partitions became known.
    mutating func setPartitions(_ known: [Int32]) {
        partitions = known.sorted()
    }

    /// A partition's end was reached.
    mutating func markLive(_ partition: Int32) {
        live.insert(partition)
    }

    /// Applies one record (value nil or empty: a tombstone). Returns false
    /// for a record that is not a schedule (kept out of the catalog).
    @discardableResult
    mutating func apply(id: String, partition: Int32, value: [UInt8]?) -> Bool {
        guard let value, !value.isEmpty else {
            entries[id] = nil
            return true
        }
        guard let schedule = try? JSONDecoder().decode(Schedule.self, from: Data(value)), schedule.id == id else { return false }
        entries[id] = Entry(partition: partition, nextDueMs: schedule.nextDueMs, record: value)
        return true
    }

    /// Applies a schedule this daemon wrote (acknowledged by the broker), so
    /// its own listing shows it before the follower reads it back.
    mutating func apply(_ record: ScheduleRecord, partitions count: Int) {
        let partition = ScheduleRecord.partition(of: record.id, partitions: count)
        switch record {
        case .removed(let id):
            entries[id] = nil
        case .schedule(let schedule):
            let message = record.message(topic: "", partitions: count)
            entries[schedule.id] = Entry(partition: partition, nextDueMs: schedule.nextDueMs, record: message.value)
        }
    }

    /// The schedules, earliest due first (decoded from their records), with their partitions.
    func schedules() -> [(schedule: Schedule, partition: Int32)] {
        let decoder = JSONDecoder()
        return entries.sorted { ($0.value.nextDueMs, $0.key) < ($1.value.nextDueMs, $1.key) }.compactMap { id, entry in
            (try? decoder.decode(Schedule.self, from: Data(entry.record))).map { ($0, entry.partition) }
        }
    }
}
