import Foundation

/// RFC 3339 times as `at` takes them and the API shows due times.
enum RFC3339 {
    /// Milliseconds since the epoch of `text` (`2026-11-30T09:00:00Z`,
    /// fractional seconds and numeric offsets allowed); throws naming `field`.
    static func parse(_ text: String, field: String) throws(ScheduleFieldError) -> Int64 {
        let withFraction = ISO8601DateFormatter()
        withFraction.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let plain = ISO8601DateFormatter()
        plain.formatOptions = [.withInternetDateTime]
        guard let date = plain.date(from: text) ?? withFraction.date(from: text) else {
            throw ScheduleFieldError(field, "'\(text.prefix(64))' is not an RFC 3339 time such as \"2026-11-30T09:00:00Z\" or \"2026-11-30T10:00:00+01:00\"")
        }
        return Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    /// `ms` since the epoch as `2026-11-30T09:00:00.000Z` (by hand: a
    /// formatter per call cost more than the rest of a long `GET /tasks`).
    static func format(_ ms: Int64) -> String {
        let day = WallClock.floorDiv(ms, 86_400_000)
        let ofDay = ms - day * 86_400_000
        let date = WallClock.civil(days: day)
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let millis = ofDay % 1000
        let fraction = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return "\(date.year)-\(two(Int64(date.month)))-\(two(Int64(date.day)))T\(two(ofDay / 3_600_000)):\(two(ofDay / 60_000 % 60)):\(two(ofDay / 1000 % 60)).\(fraction)Z"
    }

    /// Now, in ms since the epoch.
    static var nowMs: Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }
}
