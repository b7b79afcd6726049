/// A schedule field (`at`, `after`, `every`, `cron`, `timezone`) that cannot
/// be used; `description` names the field and what is wrong, for a 400 or a
/// Lua error.
public struct ScheduleFieldError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The field at fault, e.g. `cron`.
    public let field: String
    /// What is wrong with it.
    public let reason: String

    init(_ field: String, _ reason: String) {
        self.field = field
        self.reason = reason
    }

    public var description: String { "field '\(field)': \(reason)" }
}
