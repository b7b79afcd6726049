import Foundation

extension CronExpression {
    /// How far ahead `next` looks: eight years and a bit covers February 29
    /// across a century year that is not a leap year.
    static let horizonDays: Int64 = 366 * 9

    /// The first instant (ms since the epoch) strictly after `after` at
    /// which the expression fires in `zone`, or nil if none within the
    /// horizon. Times are matched on `zone`'s wall clock; see `WallClock` for
    /// what happens at daylight-saving changes (a skipped time fires once at
    /// the end of the gap, a repeated time fires once, at its first occurrence).
    func next(after: Int64, in zone: TimeZone) -> Int64? {
        var minute = WallClock.wallMinute(ms: after, in: zone) + 1
        // In an overlap the wall clock goes back, so the first matching wall
        // minute may map to instants before `after`: try the following ones.
        for _ in 0..<4 {
            guard let found = nextWallMinute(from: minute) else { return nil }
            let firstAfter = WallClock.instants(minute: found, in: zone).map { $0 * 1000 }.first { $0 > after }
            if let firstAfter { return firstAfter }
            minute = found + 1
        }
        // Still in the past after a few tries (an odd zone history): move an hour on.
        return next(after: after + 3_600_000, in: zone)
    }

    /// The first wall-clock minute at or after `start` (minutes since the
    /// epoch in wall-clock terms) that matches all five fields.
    func nextWallMinute(from start: Int64) -> Int64? {
        var minute = start
        let limit = WallClock.floorDiv(start, 1440) + Self.horizonDays
        while true {
            let day = WallClock.floorDiv(minute, 1440)
            guard day <= limit else { return nil }
            let date = WallClock.civil(days: day)
            if months & (1 << UInt64(date.month)) == 0 {
                // Next month's first day.
                let (year, month) = date.month == 12 ? (date.year + 1, 1) : (date.year, date.month + 1)
                minute = WallClock.days(year: year, month: month, day: 1) * 1440
                continue
            }
            guard matchesDay(month: date.month, day: date.day, weekday: WallClock.weekday(days: day)) else {
                minute = (day + 1) * 1440
                continue
            }
            let ofDay = Int(minute - day * 1440)
            if let time = nextTime(hour: ofDay / 60, minute: ofDay % 60) {
                return day * 1440 + Int64(time)
            }
            minute = (day + 1) * 1440
        }
    }

    /// The first allowed minute of the day (as minutes since midnight) at or
    /// after hour:minute, or nil if none remains that day.
    private func nextTime(hour: Int, minute: Int) -> Int? {
        for h in hour..<24 where hours & (1 << UInt64(h)) != 0 {
            let from = h == hour ? minute : 0
            let remaining = minutes >> UInt64(from)
            if remaining != 0 { return h * 60 + from + remaining.trailingZeroBitCount }
        }
        return nil
    }
}
