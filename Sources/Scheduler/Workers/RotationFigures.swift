/// The coordinator's running figures for one worker.
struct WorkerActivity {
    var messages = 0
    var errors = 0
    var deadLettered = 0
    var slices = 0
    var busy = Duration.zero

    mutating func record(_ report: SliceReport) {
        messages += report.messages
        errors += report.errors
        deadLettered += report.deadLettered
        // A slice is counted at its boundary, or at the lease's end when
        // the lease ended inside the slice (not in overtime).
        if !report.overtime { slices += 1 }
        busy += report.busy
    }
}

/// The most recent handoff gaps (end of one lease to the first message under
/// the next, on the same partition).
struct GapRecorder {
    static let capacity = 4096
    private(set) var recent: [Duration] = []
    private var nextSlot = 0
    private(set) var count = 0

    mutating func record(_ gap: Duration) {
        if recent.count < Self.capacity {
            recent.append(gap)
        } else {
            recent[nextSlot] = gap
        }
        nextSlot = (nextSlot + 1) % Self.capacity
        count += 1
    }

    /// The `q` quantile (0...1) of the recorded gaps in milliseconds, or nil.
    func quantileMs(_ q: Double) -> Double? {
        guard !recent.isEmpty else { return nil }
        let sorted = recent.sorted()
        let index = min(sorted.count - 1, Int((Double(sorted.count) * q).rounded(.up)) - 1)
        return Double(sorted[max(0, index)] / .microseconds(1)) / 1000
    }

    /// The recorded gaps (up to `capacity`), in no particular order.
    var recentDurations: [Duration] { recent }

    /// The last `n` gaps in milliseconds, newest last.
    func lastMs(_ n: Int) -> [Double] {
        guard !recent.isEmpty else { return [] }
        let ordered = recent.count < Self.capacity ? recent : Array(recent[nextSlot...] + recent[..<nextSlot])
        return ordered.suffix(n).map { Double($0 / .microseconds(1)) / 1000 }
    }
}

/// Recent lease spans, for the dashboard's timeline (the last minute).
struct LeaseHistory {
    struct Span {
        let worker: Int
        let partition: TopicPartition
        let start: ContinuousClock.Instant
        let end: ContinuousClock.Instant
    }

    static let window = Duration.seconds(60)
    static let capacity = 2000
    private(set) var spans: [Span] = []

    mutating func record(_ span: Span) {
        spans.append(span)
        let horizon = span.end - Self.window
        if spans.count > Self.capacity || (spans.first.map { $0.end < horizon } ?? false) {
            spans.removeAll { $0.end < horizon }
            if spans.count > Self.capacity { spans.removeFirst(spans.count - Self.capacity) }
        }
    }
}
