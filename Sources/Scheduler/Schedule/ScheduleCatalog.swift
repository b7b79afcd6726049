import Foundation

/// Every schedule of the cluster as this daemon last read it from the
/// schedule topic (all partitions, whoever owns them), for `GET /tasks` on
/// any daemon. A plain value; `ScheduleCatalogFollower` fills it.
///
/// Small per schedule, for a topic of a million: the id (the 16 bytes of its
/// UUID for the ids the scheduler makes), the partition, the next due time
/// (the listing's order) and the record's JSON value as read (decoded only
/// when listed): one allocation per schedule. The owner's `ScheduleTable`
/// keeps the decoded schedules it fires; this keeps bytes.
struct ScheduleCatalog: Sendable {
    /// A schedule id as the catalog keys it: `s-<lowercase UUID>` (every id
    /// the scheduler makes) as the UUID's 16 bytes, any other id as its text.
    enum Key: Hashable, Sendable {
        case uuid(UUID)
        case text(String)

        init(_ id: String) {
            if id.utf8.count == 38, id.hasPrefix("s-"), let uuid = UUID(uuidString: String(id.dropFirst(2))),
               uuid.uuidString.lowercased() == id.dropFirst(2) {
                self = .uuid(uuid)
            } else {
                self = .text(id)
            }
        }

        var id: String {
            switch self {
            case .uuid(let uuid): "s-" + uuid.uuidString.lowercased()
            case .text(let text): text
            }
        }
    }

    /// One schedule: where it lives, when it is due, its record.
    struct Entry: Sendable, Equatable {
        let partition: Int32
        let nextDueMs: Int64
        /// The schedule's revision: a record of a lower one is a fire's state
        /// under an older definition, superseded (its owner writes the merge).
        let revision: Int64
        /// The record's value (the schedule as JSON).
        let record: [UInt8]
    }

    private(set) var entries: [Key: Entry] = [:]
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
            entries[Key(id)] = nil
            return true
        }
        guard let summary = try? JSONDecoder().decode(Summary.self, from: Data(value)), summary.id == id else { return false }
        let revision = summary.revision ?? 0
        if let held = entries[Key(id)], held.revision > revision { return true }
        entries[Key(id)] = Entry(partition: partition, nextDueMs: summary.nextDueMs, revision: revision, record: value)
        return true
    }

    /// The fields of a schedule record the catalog keeps, decoded without
    /// the rest (task, kind, policies): at start the catalog reads every
    /// schedule of the cluster, and decoding each whole `Schedule` was a
    /// third of a daemon's CPU while it read 300,000 (`perf`, release). A
    /// record that is not a whole schedule is still dropped when listed.
    private struct Summary: Decodable {
        let id: String
        let nextDueMs: Int64
        let revision: Int64?
    }

    /// Applies a schedule this daemon wrote (acknowledged by the broker), so
    /// its own listing shows it before the follower reads it back.
    mutating func apply(_ record: ScheduleRecord, partitions count: Int) {
        let partition = ScheduleRecord.partition(of: record.id, partitions: count)
        switch record {
        case .removed(let id):
            entries[Key(id)] = nil
        case .schedule(let schedule):
            let revision = schedule.revision ?? 0
            if let held = entries[Key(schedule.id)], held.revision > revision { return }
            let message = record.message(topic: "", partitions: count)
            entries[Key(schedule.id)] = Entry(partition: partition, nextDueMs: schedule.nextDueMs, revision: revision, record: message.value)
        }
    }

    /// Schedule `id` as last read, and its partition.
    func schedule(id: String) -> (schedule: Schedule, partition: Int32)? {
        guard let entry = entries[Key(id)], let schedule = try? JSONDecoder().decode(Schedule.self, from: Data(entry.record)) else { return nil }
        return (schedule, entry.partition)
    }

    /// The first `limit` schedules due, outside the partitions in
    /// `excluding`, with their partitions. Sorting needs no decoding: only
    /// the records listed are decoded.
    func schedules(limit: Int = .max, excluding: Set<Int32> = []) -> [(schedule: Schedule, partition: Int32)] {
        let decoder = JSONDecoder()
        // Ties in due time are ordered by id where the listing is built.
        return entries.values.filter { !excluding.contains($0.partition) }.sorted { $0.nextDueMs < $1.nextDueMs }.prefix(limit)
            .compactMap { entry in (try? decoder.decode(Schedule.self, from: Data(entry.record))).map { ($0, entry.partition) } }
    }
}
