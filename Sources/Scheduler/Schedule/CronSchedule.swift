import Foundation

/// A cron expression with the time zone its wall clock is read in.
struct CronSchedule: Sendable, Equatable, Codable {
    /// The parsed expression.
    let expression: CronExpression
    /// IANA name of the zone, e.g. `Europe/Berlin`; `UTC` when none was given.
    let timezone: String
    let zone: TimeZone

    /// Parses the expression and looks the zone up; throws naming `cron` or `timezone`.
    init(_ expression: String, timezone: String?) throws(ScheduleFieldError) {
        self.expression = try CronExpression(expression)
        let name = timezone ?? "UTC"
        // TimeZone(identifier:) also accepts abbreviations like "EST"; only IANA
        // names (and UTC/GMT) are documented, but what Foundation knows is accepted.
        guard !name.isEmpty, let zone = TimeZone(identifier: name) else {
            throw ScheduleFieldError("timezone", "'\(name.prefix(64))' is not a known IANA time zone name (e.g. Europe/Berlin, America/New_York, UTC)")
        }
        self.timezone = name
        self.zone = zone
    }

    /// The first firing strictly after `after` (ms since the epoch).
    func next(after: Int64) -> Int64? {
        expression.next(after: after, in: zone)
    }

    static func == (lhs: CronSchedule, rhs: CronSchedule) -> Bool {
        lhs.expression == rhs.expression && lhs.timezone == rhs.timezone
    }

    private enum CodingKeys: String, CodingKey { case expression, timezone }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let text = try container.decode(String.self, forKey: .expression)
        let zone = try container.decode(String.self, forKey: .timezone)
        do {
            try self.init(text, timezone: zone)
        } catch {
            throw DecodingError.dataCorruptedError(forKey: .expression, in: container, debugDescription: error.description)
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(expression.source, forKey: .expression)
        try container.encode(timezone, forKey: .timezone)
    }
}
