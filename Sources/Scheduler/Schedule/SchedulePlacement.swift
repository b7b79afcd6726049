import Foundation

/// Where schedule records go, for code that creates or cancels schedules
/// (the API and `scheduler.schedule`/`scheduler.cancel` in scripts).
public struct SchedulePlacement: Sendable {
    /// The schedule topic.
    let topic: String
    /// Its partition count (`[schedules] partitions`).
    let partitions: Int
    /// Publishes a record at once, without waiting (scripts outside
    /// `process()`); nil inside workers, where the record travels as an emit
    /// of the message being processed, so it is stored before that message's
    /// offset is committed. Answers why the record was not written
    /// (`[scripts] max_pending_records`), or nil.
    let publish: (@Sendable (OutgoingMessage, ScheduleRecord) -> String?)?
    /// Why no more schedules may be created now (`[schedules] max_schedules`), or nil.
    var admit: (@Sendable () -> String?)? = nil

    /// The same placement for workers: records go out as tracked emits.
    var forWorkers: SchedulePlacement { SchedulePlacement(topic: topic, partitions: partitions, publish: nil, admit: admit) }

    /// A new schedule of `kind` for `task` and its record.
    func create(task: TaskSpec, kind: ScheduleKind, now: Int64) throws(ScheduleFieldError) -> (Schedule, OutgoingMessage) {
        let schedule = try Schedule(id: "s-" + UUID().uuidString.lowercased(), task: task, kind: kind, now: now)
        return (schedule, ScheduleRecord.schedule(schedule).message(topic: topic, partitions: partitions))
    }

    /// The tombstone that cancels schedule `id`.
    func cancel(id: String) -> OutgoingMessage {
        ScheduleRecord.removed(id: id).message(topic: topic, partitions: partitions)
    }
}
