import Foundation

/// One record of the schedule topic (`[schedules] topic`, default
/// `task-scheduler.schedules`, meant to be compacted): key the schedule id,
/// value the schedule as JSON (its definition and how far it got), or a
/// tombstone (null value) once it is cancelled or a one-shot fired.
///
/// A schedule's partition is a hash of its id (FNV-1a, modulo the topic's
/// partition count), the same in every daemon, so its creation, its state
/// after each fire and its tombstone all land in one partition, in order.
enum ScheduleRecord: Sendable, Equatable {
    /// A schedule's definition and state.
    case schedule(Schedule)
    /// The schedule `id` is gone.
    case removed(id: String)

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    /// Whether the record makes a new schedule (rather than removing one).
    var isCreation: Bool {
        if case .schedule = self { return true }
        return false
    }

    /// The schedule id this record is about.
    var id: String {
        switch self {
        case .schedule(let schedule): schedule.id
        case .removed(let id): id
        }
    }

    /// The partition of `id` among `partitions`.
    static func partition(of id: String, partitions: Int) -> Int32 {
        var hash: UInt32 = 2_166_136_261
        for byte in id.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 16_777_619
        }
        return Int32(hash % UInt32(max(partitions, 1)))
    }

    /// The Kafka record, for a topic of `partitions` partitions.
    func message(topic: String, partitions: Int) -> OutgoingMessage {
        let partition = Self.partition(of: id, partitions: partitions)
        switch self {
        case .schedule(let schedule):
            // Encoding strings and integers cannot fail.
            let value = (try? Self.encoder.encode(schedule)).map { Array($0) } ?? Array("{}".utf8)
            return OutgoingMessage(topic: topic, key: Array(id.utf8), value: value, partition: partition)
        case .removed(let id):
            return .tombstone(topic: topic, key: Array(id.utf8), partition: partition)
        }
    }

    /// Reads a consumed record; throws a message naming the offset for one
    /// this daemon did not write.
    init(key: [UInt8]?, value: [UInt8], offset: Int64) throws(PoolRecordError) {
        guard let key, !key.isEmpty else { throw PoolRecordError("schedule record at offset \(offset) has no key") }
        let id = key.utf8String
        if value.isEmpty {
            self = .removed(id: id)
            return
        }
        do {
            let schedule = try JSONDecoder().decode(Schedule.self, from: Data(value))
            guard schedule.id == id else { throw PoolRecordError("key and id differ") }
            self = .schedule(schedule)
        } catch {
            throw PoolRecordError("schedule record '\(id.prefix(64))' at offset \(offset) is not a schedule: \(error)")
        }
    }
}
