/// Which topics clients (the API, scripts) may publish to, and how many
/// distinct ones this daemon keeps track of (`[api] topics`, `[api]
/// max_topics`). Every distinct topic costs memory for good: an entry in the
/// publisher's known topics, per-topic metric series, a topic on the embedded
/// broker. A value type: the rules, tested in `TopicPolicyTests`.
public struct TopicPolicy: Sendable, Equatable {
    /// Allowed patterns (`*` matches any run of characters); empty: any topic.
    public let patterns: [String]
    /// Topics the daemon writes itself (pool, schedules, reports, dead
    /// letters as patterns), always allowed.
    public let internalPatterns: [String]
    /// Most distinct topics tracked.
    public let maxTopics: Int

    public init(patterns: [String], internalPatterns: [String] = [], maxTopics: Int) {
        self.patterns = patterns
        self.internalPatterns = internalPatterns
        self.maxTopics = maxTopics
    }

    /// Any topic, and up to `Int.max` of them (benchmarks, tests).
    public static let any = TopicPolicy(patterns: [], maxTopics: .max)

    /// The policy of a configuration: its own topics are internal.
    public init(_ config: SchedulerConfig) {
        self.init(
            patterns: config.api.topics,
            internalPatterns: [config.producer.poolTopic, config.schedules.topic, config.cluster.reportsTopic]
                + config.groups.map { $0.deadLetterTopic.replacingOccurrences(of: "{topic}", with: "*") },
            maxTopics: config.api.maxTopics)
    }

    /// Why a client may not publish to `topic`, given the topics already
    /// tracked (`known`, `tracked` of them); nil if it may.
    public func problem(_ topic: String, known: Bool, tracked: Int) -> String? {
        let isInternal = internalPatterns.contains { Self.matches(topic, $0) }
        if !patterns.isEmpty && !isInternal && !patterns.contains(where: { Self.matches(topic, $0) }) {
            return "topic '\(topic.prefix(80))' is not allowed ([api] topics: \(patterns.map { "\"\($0)\"" }.joined(separator: ", ")))"
        }
        if !known && !isInternal && tracked >= maxTopics {
            return "topic '\(topic.prefix(80))' would be distinct topic number \(tracked + 1); this daemon publishes to at most \(maxTopics) ([api] max_topics)"
        }
        return nil
    }

    /// Whether `topic` matches `pattern`, where `*` matches any run of
    /// characters (topic names are ASCII, so bytes are compared).
    public static func matches(_ topic: String, _ pattern: String) -> Bool {
        let text = Array(topic.utf8), parts = pattern.utf8.split(separator: UInt8(ascii: "*"), omittingEmptySubsequences: false).map(Array.init)
        guard parts.count > 1 else { return text == parts[0] }
        guard text.starts(with: parts[0]), text.count >= parts[0].count + parts.last!.count,
              text.reversed().starts(with: parts.last!.reversed()) else { return false }
        // The middle parts in order, greedily leftmost, between the two ends.
        var position = parts[0].count
        let end = text.count - parts.last!.count
        for part in parts.dropFirst().dropLast() where !part.isEmpty {
            guard let found = Self.find(part, in: text, from: position, before: end) else { return false }
            position = found + part.count
        }
        return true
    }

    private static func find(_ part: [UInt8], in text: [UInt8], from start: Int, before end: Int) -> Int? {
        guard end - start >= part.count else { return nil }
        for index in start...(end - part.count) where text[index..<(index + part.count)].elementsEqual(part) { return index }
        return nil
    }

    /// Why `pattern` is not a usable `[api] topics` entry, or nil.
    public static func patternProblem(_ pattern: String) -> String? {
        let plain = pattern.replacingOccurrences(of: "*", with: "x")
        if pattern.isEmpty { return "patterns must not be empty" }
        return TopicName.problem(plain).map { "'\(pattern)': \($0) (and '*')" }
    }
}
