import Foundation

/// Civil-calendar arithmetic on wall-clock minutes (minutes since 1970-01-01
/// 00:00 of a zone's local time, as if that zone were UTC), and the rule that
/// turns a wall-clock time into an instant in a time zone.
///
/// The daylight-saving rule: a wall-clock time skipped by a spring-forward
/// change maps to the first instant after the gap (the moment of the
/// change); a wall-clock time that occurs twice at a fall-back change maps to
/// its first occurrence, and `instants` lists both so a caller can take the
/// later one when the first is already past.
enum WallClock {
    /// (year, month 1...12, day 1...31) of `days` since 1970-01-01
    /// (Howard Hinnant's `civil_from_days`).
    static func civil(days: Int64) -> (year: Int64, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = Int(doy - (153 * mp + 2) / 5 + 1)
        let month = Int(mp < 10 ? mp + 3 : mp - 9)
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// Days since 1970-01-01 of a civil date (`days_from_civil`).
    static func days(year: Int64, month: Int, day: Int) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// Weekday of `days` since 1970-01-01: 0 Sunday ... 6 Saturday.
    static func weekday(days: Int64) -> Int {
        Int(((days % 7) + 11) % 7)
    }

    /// Offset of `zone` from UTC in seconds at the instant `seconds`.
    static func offset(_ zone: TimeZone, at seconds: Int64) -> Int64 {
        Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(seconds))))
    }

    /// Wall-clock minute of the instant `ms` in `zone`.
    static func wallMinute(ms: Int64, in zone: TimeZone) -> Int64 {
        let seconds = floorDiv(ms, 1000)
        return floorDiv(seconds + offset(zone, at: seconds), 60)
    }

    /// The instants (seconds, ascending) at which `zone`'s clocks show the
    /// wall-clock minute `minute`: one normally, two in a fall-back overlap,
    /// and in a spring-forward gap the single instant the gap ends.
    static func instants(minute: Int64, in zone: TimeZone) -> [Int64] {
        let wall = minute * 60
        // Offsets in force around that time (a day either side covers any change).
        let offsets = Set([offset(zone, at: wall - 86_400), offset(zone, at: wall), offset(zone, at: wall + 86_400)])
        let valid = offsets.map { wall - $0 }.filter { offset(zone, at: $0) == wall - $0 }.sorted()
        if !valid.isEmpty { return Array(Set(valid)).sorted() }
        // In a gap: the change happens between wall - max and wall - min;
        // find the first second whose wall clock is at or past `wall`.
        var low = wall - (offsets.max() ?? 0)
        var high = wall - (offsets.min() ?? 0)
        if low > high { swap(&low, &high) }
        while low < high {
            let middle = low + (high - low) / 2
            if middle + offset(zone, at: middle) >= wall { high = middle } else { low = middle + 1 }
        }
        return [low]
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        a >= 0 ? a / b : -((-a + b - 1) / b)
    }
}
