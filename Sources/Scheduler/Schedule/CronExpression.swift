import Foundation

/// A parsed 5-field cron expression: minute, hour, day of month, month, day
/// of week. Each field takes `*`, numbers, ranges `a-b`, steps `*/n`,
/// `a-b/n` and `a/n` (from a to the field's end), and comma lists of these;
/// months take `JAN`-`DEC` and days of week `SUN`-`SAT` (either case; 0 and 7
/// are Sunday). `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
/// `@midnight` and `@hourly` stand for their usual expressions.
///
/// Day of month and day of week follow the usual cron rule: when both are
/// restricted (neither starts with `*`), a day matches if either matches;
/// otherwise only the restricted one counts.
struct CronExpression: Sendable, Equatable {
    /// Allowed minutes, bit n for minute n.
    let minutes: UInt64
    /// Allowed hours, bit n for hour n.
    let hours: UInt64
    /// Allowed days of month, bit n for day n (1...31).
    let daysOfMonth: UInt64
    /// Allowed months, bit n for month n (1...12).
    let months: UInt64
    /// Allowed days of week, bit n for weekday n (0 Sunday ... 6 Saturday).
    let daysOfWeek: UInt64
    /// Day-of-month field does not start with `*`.
    let dayOfMonthRestricted: Bool
    /// Day-of-week field does not start with `*`.
    let dayOfWeekRestricted: Bool
    /// The text it was parsed from.
    let source: String

    private static let macros = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]
    private static let monthNames = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    private static let dayNames = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
    /// Days in each month in the longest case (February of a leap year).
    static let longestMonth = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

    private struct Field {
        let name: String
        let range: ClosedRange<Int>
        let names: [String]
        let namesStartAt: Int
    }

    private static let fields = [
        Field(name: "minute", range: 0...59, names: [], namesStartAt: 0),
        Field(name: "hour", range: 0...23, names: [], namesStartAt: 0),
        Field(name: "day of month", range: 1...31, names: [], namesStartAt: 0),
        Field(name: "month", range: 1...12, names: monthNames, namesStartAt: 1),
        Field(name: "day of week", range: 0...7, names: dayNames, namesStartAt: 0),
    ]

    /// Parses `text`; throws naming the `cron` field and the part at fault.
    init(_ text: String) throws(ScheduleFieldError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let expanded = Self.macros[trimmed.lowercased()] ?? trimmed
        let parts = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard parts.count == 5 else {
            throw ScheduleFieldError("cron", "'\(text.prefix(80))' has \(parts.count) field(s); expected 5 (minute hour day-of-month month day-of-week) or a macro such as @daily")
        }
        var sets: [UInt64] = []
        for (field, part) in zip(Self.fields, parts) {
            sets.append(try Self.parse(String(part), field))
        }
        // Day of week 7 is Sunday.
        var weekdays = sets[4]
        if weekdays & (1 << 7) != 0 { weekdays = (weekdays | 1) & ~(1 << 7) }
        minutes = sets[0]
        hours = sets[1]
        daysOfMonth = sets[2]
        months = sets[3]
        daysOfWeek = weekdays
        dayOfMonthRestricted = !parts[2].hasPrefix("*")
        dayOfWeekRestricted = !parts[4].hasPrefix("*")
        source = trimmed
        // A day-of-month list no chosen month has (e.g. 30 2) never fires.
        if dayOfMonthRestricted && !dayOfWeekRestricted {
            let possible = (1...12).contains { month in
                months & (1 << month) != 0 && (1...Self.longestMonth[month]).contains { daysOfMonth & (1 << $0) != 0 }
            }
            if !possible {
                throw ScheduleFieldError("cron", "'\(text.prefix(80))' never fires: no chosen month has the chosen day(s) of month")
            }
        }
    }

    private static func parse(_ text: String, _ field: Field) throws(ScheduleFieldError) -> UInt64 {
        var set: UInt64 = 0
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let pieces = item.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2, !pieces[0].isEmpty else { throw bad(field, text, "'\(item)' is not a value, range or step") }
            var step = 1
            if pieces.count == 2 {
                guard let value = Int(pieces[1]), value > 0, value <= field.range.upperBound + 1 else {
                    throw bad(field, text, "step '\(pieces[1])' must be a number from 1 to \(field.range.upperBound + 1)")
                }
                step = value
            }
            var low: Int
            var high: Int
            if pieces[0] == "*" {
                (low, high) = (field.range.lowerBound, field.range.upperBound)
                // Day of week: * is 0-6 (7 would repeat Sunday in a step).
                if field.name == "day of week" { high = 6 }
            } else {
                let bounds = pieces[0].split(separator: "-", omittingEmptySubsequences: false)
                guard bounds.count <= 2 else { throw bad(field, text, "'\(pieces[0])' is not a value or range") }
                low = try value(String(bounds[0]), field, text)
                high = bounds.count == 2 ? try value(String(bounds[1]), field, text) : (pieces.count == 2 ? field.range.upperBound : low)
                guard low <= high else { throw bad(field, text, "range '\(pieces[0])' goes backwards") }
            }
            for value in stride(from: low, through: high, by: step) { set |= 1 << UInt64(value) }
        }
        return set
    }

    private static func value(_ text: String, _ field: Field, _ whole: String) throws(ScheduleFieldError) -> Int {
        if let number = Int(text) {
            guard field.range.contains(number) else {
                throw bad(field, whole, "\(number) is outside \(field.range.lowerBound)-\(field.range.upperBound)")
            }
            return number
        }
        if let index = field.names.firstIndex(of: text.uppercased()) { return index + field.namesStartAt }
        let hint = field.names.isEmpty ? "" : " or a name (\(field.names.first!)-\(field.names.last!))"
        throw bad(field, whole, "'\(text.prefix(20))' is not a number\(hint)")
    }

    private static func bad(_ field: Field, _ text: String, _ reason: String) -> ScheduleFieldError {
        ScheduleFieldError("cron", "\(field.name) '\(text.prefix(40))': \(reason)")
    }

    /// True if the civil day (month 1...12, day 1...31, weekday 0 Sunday) matches.
    func matchesDay(month: Int, day: Int, weekday: Int) -> Bool {
        guard months & (1 << UInt64(month)) != 0 else { return false }
        let byDay = daysOfMonth & (1 << UInt64(day)) != 0
        let byWeekday = daysOfWeek & (1 << UInt64(weekday)) != 0
        if dayOfMonthRestricted && dayOfWeekRestricted { return byDay || byWeekday }
        return byDay && byWeekday
    }
}
