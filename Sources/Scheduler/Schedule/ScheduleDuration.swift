import Foundation

/// Durations as `after` and `every` take them: one or more `<integer><unit>`
/// parts, units `ms`, `s`, `m`, `h`, `d`, largest first, e.g. `"90s"`,
/// `"10m"`, `"1h30m"`, `"250ms"`. A bare number is seconds (Lua's `after=90`).
enum ScheduleDuration {
    private static let units: [(suffix: String, ms: Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
    /// Longest accepted duration: ten years, so due times stay far from overflow.
    static let maximumMs: Int64 = 3650 * 86_400_000

    /// The duration in milliseconds; throws naming `field` when `text` is not one.
    static func parse(_ text: String, field: String) throws(ScheduleFieldError) -> Int64 {
        let shape = "expected a duration such as \"90s\", \"10m\", \"1h30m\" or \"250ms\""
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let seconds = Int64(trimmed) { return try checked(seconds * 1000, field: field) }
        var rest = Substring(trimmed)
        var total: Int64 = 0
        var lastRank = Int.max
        guard !rest.isEmpty else { throw ScheduleFieldError(field, "is empty; \(shape)") }
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, digits.count <= 12, let amount = Int64(digits) else {
                throw ScheduleFieldError(field, "'\(text.prefix(40))' is not a duration; \(shape)")
            }
            rest = rest.dropFirst(digits.count)
            let letters = rest.prefix { $0.isLetter }
            // "ms" before "m": look the whole unit up.
            guard let rank = units.firstIndex(where: { $0.suffix == letters }) else {
                throw ScheduleFieldError(field, "'\(text.prefix(40))' has no valid unit after \(digits) (ms, s, m, h, d); \(shape)")
            }
            guard rank < lastRank else {
                throw ScheduleFieldError(field, "'\(text.prefix(40))': units must go from largest to smallest, each once")
            }
            lastRank = rank
            rest = rest.dropFirst(letters.count)
            total += amount * units[rank].ms
            if total > maximumMs { break }
        }
        return try checked(total, field: field)
    }

    private static func checked(_ ms: Int64, field: String) throws(ScheduleFieldError) -> Int64 {
        guard ms > 0 else { throw ScheduleFieldError(field, "must be longer than zero") }
        guard ms <= maximumMs else { throw ScheduleFieldError(field, "must be at most 3650 days") }
        return ms
    }

    /// `ms` written back in the same notation, e.g. 5_400_000 -> "1h30m".
    static func format(_ ms: Int64) -> String {
        guard ms > 0 else { return "0s" }
        var rest = ms
        var text = ""
        for unit in units.reversed() where rest >= unit.ms {
            text += "\(rest / unit.ms)\(unit.suffix)"
            rest %= unit.ms
        }
        return text
    }
}
