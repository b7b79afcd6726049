import Foundation
import Testing
@testable import Scheduler

/// The cron next-fire search against a brute-force oracle: every minute of a
/// window, its wall-clock time in the zone computed from
/// `TimeZone.secondsFromGMT` and calendar arithmetic of the test's own
/// (civil-from-days), matched against the expression's fields, with the
/// documented DST rule: a wall time skipped by a gap fires once at the first
/// instant after the gap; a wall time repeated by a fall-back fires only at
/// its first pass. Windows: 26 hours either side of every offset change
/// 2020-2040 of each zone, plus two 30-hour windows a year away from them
/// (all of them for a zone without changes).
@Suite("Cron next fire against a minute-by-minute oracle, 2020-2040, zones with unusual rules", .sharesMachine)
struct CronOracleTests {
    static let expressions = [
        "30 2 * * *", "*/15 2 * * *", "0 * * * *", "*/20 * * * *", "30 1 * * *", "0 0 * * *",
        "15,45 0-3 * * *", "45 23 * * SUN", "0 3 1 * *", "5 0 * * 1-5", "*/30 * * * *",
    ]
    static let zones = [
        "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Pacific/Chatham", "America/Santiago",
        "Antarctica/Troll", "Asia/Kolkata", "Australia/Sydney",
    ]
    static let from = ms("2020-01-01T00:00:00Z")
    static let to = ms("2041-01-01T00:00:00Z")

    /// Local fields of a local time given in minutes since the epoch.
    struct Wall: Equatable {
        let month: Int, day: Int, hour: Int, minute: Int, weekday: Int

        init(localMinute: Int64) {
            let days = Int64((Double(localMinute) / 1440).rounded(.down))
            let inDay = Int(localMinute - days * 1440)
            // Howard Hinnant's civil_from_days.
            let z = days + 719_468
            let era = (z >= 0 ? z : z - 146_096) / 146_097
            let doe = z - era * 146_097
            let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
            let mp = (5 * doy + 2) / 153
            day = Int(doy - (153 * mp + 2) / 5 + 1)
            month = Int(mp < 10 ? mp + 3 : mp - 9)
            hour = inDay / 60
            minute = inDay % 60
            // 1970-01-01 was a Thursday (4).
            weekday = Int(((days % 7) + 7 + 4) % 7)
        }
    }

    static func matches(_ cron: CronExpression, _ wall: Wall) -> Bool {
        cron.minutes & (1 << UInt64(wall.minute)) != 0 && cron.hours & (1 << UInt64(wall.hour)) != 0
            && cron.months & (1 << UInt64(wall.month)) != 0 && cron.matchesDay(month: wall.month, day: wall.day, weekday: wall.weekday)
    }

    /// The windows to check in `zone`: (start, end) in ms.
    static func windows(_ zone: TimeZone) -> [(Int64, Int64)] {
        var windows: [(Int64, Int64)] = []
        var date = Date(timeIntervalSince1970: TimeInterval(from) / 1000)
        while let next = zone.nextDaylightSavingTimeTransition(after: date), next.timeIntervalSince1970 * 1000 < Double(to) {
            let at = Int64(next.timeIntervalSince1970 * 1000)
            windows.append((at - 26 * 3_600_000, at + 26 * 3_600_000))
            date = next
        }
        // Quiet days too (and every window of a zone without changes): mid-January and mid-July, every 5 years.
        for year in stride(from: 2020, through: 2040, by: 5) {
            for month in ["01", "07"] {
                let start = ms("\(year)-\(month)-14T00:00:00Z")
                windows.append((start, start + 30 * 3_600_000))
            }
        }
        return windows
    }

    /// The oracle's fires in (start, end]: minute by minute, from 3 hours
    /// before `start` so the passes of a repeated hour are known.
    static func oracle(_ cron: CronExpression, _ walls: [(instant: Int64, local: Int64)], start: Int64, end: Int64) -> [Int64] {
        var fires: [Int64] = []
        var highest = Int64.min
        for (instant, local) in walls {
            defer { highest = max(highest, local) }
            guard highest != .min else { continue }
            var fire = false
            if local > highest {
                // First pass. After a gap: any skipped wall minute that matches fires here, once.
                fire = Self.matches(cron, Wall(localMinute: local))
                if local > highest + 1 {
                    fire = fire || (highest + 1..<local).contains { Self.matches(cron, Wall(localMinute: $0)) }
                }
            }
            if fire && instant > start && instant <= end { fires.append(instant) }
        }
        return fires
    }

    @Test("0 mismatches between CronSchedule.next and the oracle", arguments: zones)
    func oracle(_ zoneName: String) throws {
        let zone = try #require(TimeZone(identifier: zoneName))
        let schedules = try Self.expressions.map { try CronSchedule($0, timezone: zoneName) }
        var mismatches: [String] = []
        var compared = 0
        for (start, end) in Self.windows(zone) {
            // Every minute from 3 hours before the window, with its local minute.
            var walls: [(instant: Int64, local: Int64)] = []
            var instant = start - 3 * 3_600_000
            while instant <= end {
                let offset = Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(instant) / 1000)))
                walls.append((instant, (instant / 1000 + offset) / 60))
                instant += 60_000
            }
            for schedule in schedules {
                let expected = Self.oracle(schedule.expression, walls, start: start, end: end)
                var got: [Int64] = []
                var cursor = start
                while let next = schedule.next(after: cursor), next <= end {
                    got.append(next)
                    cursor = next
                }
                compared += expected.count
                if got != expected, mismatches.count < 10 {
                    let first = zip(got, expected).first { $0 != $1 }
                    mismatches.append("\(zoneName) '\(schedule.expression.source)' window \(RFC3339.format(start)): got \(got.count) fires, expected \(expected.count); first difference \(first.map { "\(RFC3339.format($0.0)) vs \(RFC3339.format($0.1))" } ?? "in length")")
                }
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.joined(separator: "\n"))")
        #expect(compared > 1000, "only \(compared) fires compared")
    }
}
