import Foundation

/// The named schedules of generate.lua: its global `schedules`, a table
/// keyed by name, each entry a schedule as the API takes it:
///
/// ```lua
/// schedules = {
///   ["nightly-report"] = { topic = "reports", message = "nightly", cron = "0 2 * * *", timezone = "Europe/Berlin" },
///   heartbeat = { topic = "health", message = "ping", every = "30s", catchup = "skip" },
/// }
/// ```
///
/// The name is the schedule's id, so every daemon running the script
/// declares the same schedules and the cluster holds one of each. Reading
/// the table and planning the changes are plain functions (table-tested);
/// `ScriptScheduleService` applies the plan at start and after each reload.
enum ScriptSchedules {
    /// The fields an entry may have.
    static let fields: Set<String> = ["topic", "message", "key", "headers", "at", "after", "every", "cron", "timezone", "catchup",
                                      "jitter", "start", "end", "limit"]

    /// The global `schedules`: nil for none; throws naming the entry and field.
    static func read(_ value: LuaValue, now: Int64) throws(ScheduleFieldError) -> [String: ScheduleStore.Definition] {
        if case .nil = value { return [:] }
        guard case .table(let entries) = value else {
            throw ScheduleFieldError("schedules", "must be a table keyed by schedule name, got \(value.typeName)")
        }
        var result: [String: ScheduleStore.Definition] = [:]
        for (key, entry) in entries {
            guard case .string(let name) = key else {
                throw ScheduleFieldError("schedules", "keys must be names (strings), got \(key.typeName) \(key.stringValue ?? "")")
            }
            do {
                result[name] = try definition(entry, name: name, now: now)
            } catch {
                // e.g. field 'schedules["nightly"].cron': minute '61': ...
                let entry = "schedules[\"\(name.prefix(64))\"]"
                throw ScheduleFieldError(["entry", "name"].contains(error.field) ? entry : "\(entry).\(error.field)", error.reason)
            }
        }
        return result
    }

    private static func definition(_ entry: LuaValue, name: String, now: Int64) throws(ScheduleFieldError) -> ScheduleStore.Definition {
        if let problem = ScheduleStore.problem(withID: name) { throw ScheduleFieldError("name", problem.replacingOccurrences(of: "field 'id' ", with: "")) }
        guard case .table(let table) = entry else { throw ScheduleFieldError("entry", "must be a table, got \(entry.typeName)") }
        if let unknown = table.keys.compactMap({ key -> String? in
            guard case .string(let field) = key else { return key.stringValue ?? key.typeName }
            return fields.contains(field) ? nil : field
        }).sorted().first {
            throw ScheduleFieldError(unknown, "is not a schedule field (allowed: \(fields.sorted().joined(separator: ", ")))")
        }
        let task: TaskSpec
        do {
            task = try TaskSpec(lua: entry)
        } catch {
            throw ScheduleFieldError("task", "\(error)")
        }
        func text(_ field: String) throws(ScheduleFieldError) -> String? {
            switch entry[field] {
            case .nil: return nil
            case .string(let value): return value
            case .integer, .number:
                // As scheduler.schedule takes them: seconds (for `at`, since the epoch).
                guard ["at", "after", "every", "jitter", "start", "end"].contains(field), case let seconds? = entry[field].numberValue, seconds.isFinite, abs(seconds) < 1e11 else {
                    throw ScheduleFieldError(field, "must be a string")
                }
                let ms = Int64((seconds * 1000).rounded())
                return field == "at" || field == "start" || field == "end" ? RFC3339.format(ms) : "\(ms)ms"
            default: throw ScheduleFieldError(field, "must be a string, got \(entry[field].typeName)")
            }
        }
        guard let kind = try ScheduleRequest.kind(at: text("at"), after: text("after"), every: text("every"), cron: text("cron"),
                                                  timezone: text("timezone"), now: now) else {
            throw ScheduleFieldError("entry", "give one of at, after, every, cron")
        }
        var timing = kind
        // On the epoch's grid, the same on every daemon applying the script
        // (`every = "1h"` fires on the hour, UTC): two daemons storing it at
        // once store the same cadence.
        if case .every(let ms, _) = kind { timing = .every(ms: ms, anchor: 0) }
        var limit: Int64?
        if case let value = entry["limit"], value != .nil {
            guard let count = value.intValue else { throw ScheduleFieldError("limit", "must be a whole number, got \(value.typeName)") }
            limit = count
        }
        let policy = try SchedulePolicy(catchup: text("catchup"), jitter: text("jitter"), start: text("start"), end: text("end"),
                                        limit: limit, kind: kind)
        return ScheduleStore.Definition(task: task, kind: timing, policy: policy, source: .script)
    }

    /// What to change so the cluster's script schedules are `declared`:
    /// create or update each declared one that is missing or differs, and
    /// remove the script schedules no longer declared (`existing`: every
    /// schedule of the cluster; API-made ones are never removed). A missing
    /// `at` whose time passed is not made again: it fired (or was cancelled),
    /// and making it again at every start or reload would fire it again.
    static func plan(declared: [String: ScheduleStore.Definition], existing: [Schedule], now: Int64) -> (put: [String], remove: [String]) {
        let byID = Dictionary(existing.map { ($0.id, $0) }) { first, _ in first }
        let put = declared.filter { id, definition in
            if let held = byID[id] { return !definition.matches(held) }
            if case .at(let due) = definition.kind, due <= now { return false }
            return true
        }.keys.sorted()
        let remove = existing.filter { $0.source == .script && declared[$0.id] == nil }.map(\.id).sorted()
        return (put, remove)
    }
}

extension LuaValue {
    /// A number as a Double (integer or float), else nil.
    var numberValue: Double? {
        switch self {
        case .integer(let value): Double(value)
        case .number(let value): value
        default: nil
        }
    }
}
