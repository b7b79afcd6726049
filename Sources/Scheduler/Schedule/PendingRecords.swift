/// The schedule records scripts wrote outside `process()` that still wait
/// for the broker's acknowledgement, against `[scripts] max_pending_records`
/// and `max_pending_record_mb`.
///
/// `scheduler.schedule` and `scheduler.cancel` in `generate()`, `on_task()`
/// or `init()` write their record without waiting, so the call can go on;
/// each record (and the task awaiting its report) is held until the broker
/// answers. The per-call budget (`CallOutput`) does not bound that across
/// calls: `on_task` runs for every posted task, so with a slow broker the
/// records would pile up for as long as clients post. New schedules among
/// them also count against `[schedules] max_schedules` until they are in
/// the daemon's table. A value type: the rules, tested on their own
/// (`PendingRecordsTests`); `ScheduleStore` applies them.
struct PendingRecords: Sendable, Equatable {
    /// Records allowed to wait at once.
    let maxRecords: Int
    /// Bytes allowed to wait at once.
    let maxBytes: Int
    /// Waiting now.
    private(set) var records = 0
    private(set) var bytes = 0
    /// New schedules among them.
    private(set) var creations = 0

    init(maxRecords: Int, maxBytes: Int) {
        self.maxRecords = maxRecords
        self.maxBytes = maxBytes
    }

    init(_ section: ScriptsSection) {
        self.init(maxRecords: section.maxPendingRecords, maxBytes: section.maxPendingRecordMB * 1024 * 1024)
    }

    /// Counts a record of `bytes` (a new schedule if `creates`); nil when
    /// it may go, else why not (nothing counted).
    mutating func admit(bytes newBytes: Int, creates: Bool) -> String? {
        if records >= maxRecords {
            return "\(records) schedule records written by scripts still wait for the broker ([scripts] max_pending_records); try again later"
        }
        // One record larger than the bound goes alone (the call's budget bounds it).
        if records > 0 && newBytes > maxBytes - bytes {
            return "\(CallOutput.size(bytes)) of schedule records written by scripts still wait for the broker ([scripts] max_pending_record_mb); try again later"
        }
        records += 1
        bytes += newBytes
        if creates { creations += 1 }
        return nil
    }

    /// A record counted by `admit` was acknowledged or failed.
    mutating func settle(bytes oldBytes: Int, creates: Bool) {
        records -= 1
        bytes -= oldBytes
        if creates { creations -= 1 }
    }
}
