import Foundation
import Testing
@testable import Scheduler

/// Milliseconds since the epoch of an RFC 3339 time (tests only).
func ms(_ text: String) -> Int64 {
    (try? RFC3339.parse(text, field: "test")) ?? -1
}

@Suite("Cron expressions: parsing and the next time", .sharesMachine)
struct CronExpressionTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let cron: String
        let zone: String
        let after: String
        let expected: String
        var testDescription: String { "\(cron) [\(zone)] after \(after)" }
    }

    static let cases: [Case] = [
        Case(cron: "*/15 * * * *", zone: "UTC", after: "2026-03-01T10:07:00Z", expected: "2026-03-01T10:15:00Z"),
        Case(cron: "*/15 * * * *", zone: "UTC", after: "2026-03-01T10:15:00Z", expected: "2026-03-01T10:30:00Z"),
        Case(cron: "0 0 1 1 *", zone: "UTC", after: "2026-12-31T23:59:00Z", expected: "2027-01-01T00:00:00Z"),
        // Leap years, and 2100, which is not one.
        Case(cron: "0 0 29 2 *", zone: "UTC", after: "2026-03-01T00:00:00Z", expected: "2028-02-29T00:00:00Z"),
        Case(cron: "0 0 29 2 *", zone: "UTC", after: "2096-03-01T00:00:00Z", expected: "2104-02-29T00:00:00Z"),
        Case(cron: "0 12 31 * *", zone: "UTC", after: "2026-04-01T00:00:00Z", expected: "2026-05-31T12:00:00Z"),
        Case(cron: "59 23 28-31 2 *", zone: "UTC", after: "2027-02-28T23:59:00Z", expected: "2028-02-28T23:59:00Z"),
        // Names and weekday ranges.
        Case(cron: "0 9 * * MON-FRI", zone: "UTC", after: "2026-11-28T10:00:00Z", expected: "2026-11-30T09:00:00Z"),
        Case(cron: "30 4 1 JAN,jul *", zone: "UTC", after: "2026-02-01T00:00:00Z", expected: "2026-07-01T04:30:00Z"),
        Case(cron: "0 0 * * 7", zone: "UTC", after: "2026-11-28T10:00:00Z", expected: "2026-11-29T00:00:00Z"),
        Case(cron: "0 0 * * sun", zone: "UTC", after: "2026-11-28T10:00:00Z", expected: "2026-11-29T00:00:00Z"),
        // Both day fields restricted: either matches (the 13th, or any Friday).
        Case(cron: "0 0 13 * FRI", zone: "UTC", after: "2026-01-01T00:00:00Z", expected: "2026-01-02T00:00:00Z"),
        Case(cron: "0 0 13 * FRI", zone: "UTC", after: "2026-01-09T00:00:00Z", expected: "2026-01-13T00:00:00Z"),
        // Day of month restricted, day of week '*': only the day of month counts.
        Case(cron: "0 0 13 * *", zone: "UTC", after: "2026-01-01T00:00:00Z", expected: "2026-01-13T00:00:00Z"),
        // A step on '*' in the day-of-week field still counts as '*' for the OR rule.
        Case(cron: "0 0 13 * */1", zone: "UTC", after: "2026-01-01T00:00:00Z", expected: "2026-01-13T00:00:00Z"),
        // Steps.
        Case(cron: "10-50/20 * * * *", zone: "UTC", after: "2026-03-01T10:51:00Z", expected: "2026-03-01T11:10:00Z"),
        Case(cron: "5/15 * * * *", zone: "UTC", after: "2026-03-01T10:51:00Z", expected: "2026-03-01T11:05:00Z"),
        Case(cron: "0 */6 * * *", zone: "UTC", after: "2026-03-01T19:00:00Z", expected: "2026-03-02T00:00:00Z"),
        Case(cron: "@hourly", zone: "UTC", after: "2026-03-01T10:00:30Z", expected: "2026-03-01T11:00:00Z"),
        // A zone without daylight saving.
        Case(cron: "0 9 * * *", zone: "Asia/Tokyo", after: "2026-03-01T00:00:00Z", expected: "2026-03-02T00:00:00Z"),
        // Spring forward: 02:30 does not exist on 8 March in New York; it fires
        // once at the end of the gap (03:00 EDT), then at 02:30 the next day.
        Case(cron: "30 2 * * *", zone: "America/New_York", after: "2026-03-07T12:00:00Z", expected: "2026-03-08T07:00:00Z"),
        Case(cron: "30 2 * * *", zone: "America/New_York", after: "2026-03-08T07:00:00Z", expected: "2026-03-09T06:30:00Z"),
        Case(cron: "*/15 2 * * *", zone: "America/New_York", after: "2026-03-08T06:50:00Z", expected: "2026-03-08T07:00:00Z"),
        Case(cron: "*/15 2 * * *", zone: "America/New_York", after: "2026-03-08T07:00:00Z", expected: "2026-03-09T06:00:00Z"),
        Case(cron: "0 2 * * *", zone: "Europe/Berlin", after: "2026-03-28T12:00:00Z", expected: "2026-03-29T01:00:00Z"),
        // Fall back: 01:30 happens twice on 1 November in New York; it fires
        // at the first one only.
        Case(cron: "30 1 * * *", zone: "America/New_York", after: "2026-10-31T12:00:00Z", expected: "2026-11-01T05:30:00Z"),
        Case(cron: "30 1 * * *", zone: "America/New_York", after: "2026-11-01T05:30:00Z", expected: "2026-11-02T06:30:00Z"),
        Case(cron: "*/20 * * * *", zone: "America/New_York", after: "2026-11-01T05:40:00Z", expected: "2026-11-01T07:00:00Z"),
    ]

    @Test("next time", arguments: cases)
    func next(_ item: Case) throws {
        let cron = try CronSchedule(item.cron, timezone: item.zone)
        let next = cron.next(after: ms(item.after))
        #expect(next.map(RFC3339.format) == RFC3339.format(ms(item.expected)))
    }

    @Test("every fire of a daily cron across a year is one day apart in UTC, 23 or 25 hours at the changes in a DST zone")
    func yearOfDays() throws {
        let utc = try CronSchedule("15 3 * * *", timezone: nil)
        let ny = try CronSchedule("15 3 * * *", timezone: "America/New_York")
        var (a, b) = (ms("2026-01-01T00:00:00Z"), ms("2026-01-01T00:00:00Z"))
        var gaps: [Int64: Int] = [:]
        for _ in 0..<365 {
            let nextA = try #require(utc.next(after: a))
            let nextB = try #require(ny.next(after: b))
            if a != ms("2026-01-01T00:00:00Z") { #expect(nextA - a == 86_400_000) }
            if b != ms("2026-01-01T00:00:00Z") { gaps[(nextB - b) / 3_600_000, default: 0] += 1 }
            (a, b) = (nextA, nextB)
        }
        #expect(gaps == [24: 362, 23: 1, 25: 1])
    }

    @Test("bad expressions are refused with a message naming the field and the part", arguments: [
        ("* * * *", "has 4 field(s)"),
        ("60 * * * *", "minute '60': 60 is outside 0-59"),
        ("* 24 * * *", "hour '24'"),
        ("* * 0 * *", "day of month '0'"),
        ("* * * 13 *", "month '13'"),
        ("* * * FOO *", "'FOO' is not a number or a name (JAN-DEC)"),
        ("* * * * 8", "day of week '8'"),
        ("5-1 * * * *", "goes backwards"),
        ("*/0 * * * *", "step '0'"),
        ("1,,2 * * * *", "is not a value"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
    ])
    func refused(_ text: String, _ message: String) {
        #expect {
            _ = try CronExpression(text)
        } throws: { error in
            let description = "\(error)"
            return description.hasPrefix("field 'cron'") && description.contains(message)
        }
    }

    @Test("an unknown time zone is refused naming 'timezone'")
    func unknownZone() {
        #expect(throws: ScheduleFieldError.self) { try CronSchedule("* * * * *", timezone: "Mars/Olympus") }
        #expect((try? CronSchedule("* * * * *", timezone: "Mars/Olympus")) == nil)
        do {
            _ = try CronSchedule("* * * * *", timezone: "Mars/Olympus")
        } catch {
            #expect(error.field == "timezone")
        }
    }

    @Test("civil calendar arithmetic round-trips over four centuries")
    func civil() {
        let start = WallClock.days(year: 1900, month: 1, day: 1)
        var wrong = 0
        for day in start..<(start + 146_097) {
            let date = WallClock.civil(days: day)
            if WallClock.days(year: date.year, month: date.month, day: date.day) != day { wrong += 1 }
        }
        #expect(wrong == 0)
        #expect(WallClock.weekday(days: WallClock.days(year: 2026, month: 11, day: 30)) == 1)  // a Monday
        #expect(WallClock.civil(days: WallClock.days(year: 2000, month: 2, day: 29)) == (2000, 2, 29))
    }
}
