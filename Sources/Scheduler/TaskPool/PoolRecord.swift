import Foundation

/// One record of the pool topic (`[producer] pool_topic`).
///
/// The topic is meant to be compacted: each pool entry is one record keyed by
/// the entry's stable id, whose value is the task as JSON; removing the entry
/// writes a tombstone (null value) for that key. A marker record says the
/// pool was created, so an emptied pool is not seeded again from
/// generate.lua's `tasks` at the next start. Everything goes to partition 0,
/// so offset order is the pool's order.
enum PoolRecord: Sendable, Equatable {
    /// An entry of the pool.
    case task(id: String, TaskSpec)
    /// The entry `id` was removed (a tombstone).
    case removed(id: String)
    /// The pool exists (written once, when it is first seeded).
    case created
    /// The publishing daemon began or finished a tick.
    case tick(PoolTick)

    /// Key of the marker record.
    static let markerKey = "task-scheduler.pool.created"
    /// Key of the tick record.
    static let tickKey = "task-scheduler.pool.tick"
    /// The partition every pool record is written to and read from.
    static let partition: Int32 = 0

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    /// The Kafka record for this change.
    func message(topic: String) -> OutgoingMessage {
        switch self {
        case .task(let id, let task):
            // Encoding a TaskSpec (strings only) cannot fail.
            let value = (try? Self.encoder.encode(task)).map { Array($0) } ?? Array("{}".utf8)
            return OutgoingMessage(topic: topic, key: Array(id.utf8), value: value, partition: Self.partition)
        case .removed(let id):
            return .tombstone(topic: topic, key: Array(id.utf8), partition: Self.partition)
        case .created:
            return OutgoingMessage(topic: topic, key: Array(Self.markerKey.utf8), value: Array(#"{"created":true}"#.utf8),
                                   partition: Self.partition)
        case .tick(let tick):
            let value = (try? Self.encoder.encode(tick)).map { Array($0) } ?? Array("{}".utf8)
            return OutgoingMessage(topic: topic, key: Array(Self.tickKey.utf8), value: value, partition: Self.partition)
        }
    }

    /// Reads a consumed record. A task's value is never empty (it is a JSON
    /// object), so an empty value is a tombstone. Throws a message naming the
    /// offset for a record this daemon did not write.
    init(key: [UInt8]?, value: [UInt8], offset: Int64) throws(PoolRecordError) {
        guard let key, !key.isEmpty else { throw PoolRecordError("record at offset \(offset) has no key") }
        let id = key.utf8String
        if id == Self.markerKey {
            self = .created
        } else if id == Self.tickKey {
            guard let tick = try? JSONDecoder().decode(PoolTick.self, from: Data(value)) else {
                throw PoolRecordError("tick record at offset \(offset) is not {\"tick\": n, \"done\": bool, \"due_ms\": ms}")
            }
            self = .tick(tick)
        } else if value.isEmpty {
            self = .removed(id: id)
        } else if let task = try? JSONDecoder().decode(TaskSpec.self, from: Data(value)) {
            self = .task(id: id, task)
        } else {
            throw PoolRecordError("record '\(id.prefix(64))' at offset \(offset) is not a task (JSON with topic and message)")
        }
    }
}

/// The tick record's value: tick `tick` (due at `due_ms`, Unix ms) was
/// begun (`done` false: its publications may be partly made) or finished.
struct PoolTick: Sendable, Equatable, Codable {
    let tick: Int
    let done: Bool
    let dueMs: Int64

    enum CodingKeys: String, CodingKey {
        case tick, done
        case dueMs = "due_ms"
    }
}

/// A record of the pool topic that is not one this daemon wrote.
struct PoolRecordError: Error, CustomStringConvertible, Sendable {
    let description: String
    init(_ description: String) { self.description = description }
}
