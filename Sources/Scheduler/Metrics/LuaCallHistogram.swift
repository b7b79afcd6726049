import Synchronization

/// `scheduler_lua_call_seconds`: a histogram whose observations are added
/// with atomics, in batches.
///
/// `process()` runs once per message on every worker; swift-prometheus's
/// histogram takes a lock per observation, shared by all workers. Workers
/// instead count their calls into a local `LuaCallTally` and merge it here
/// once per slice, lock-free; the family is rendered in Prometheus text next
/// to the registry's output.
final class LuaCallHistogram: Sendable {
    /// Upper bounds in seconds.
    static let bounds: [Double] = [0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5]

    /// One atomic cell (`Atomic` cannot live in an array by itself).
    private final class Cell: Sendable {
        private let value = Atomic<Int>(0)
        func add(_ amount: Int) { value.add(amount, ordering: .relaxed) }
        var current: Int { value.load(ordering: .relaxed) }
    }

    private final class Storage: Sendable {
        let buckets = (0..<LuaCallHistogram.bounds.count).map { _ in Cell() }
        let count = Cell()
        let sumNanoseconds = Cell()
    }

    private let series = HandleCache<String, Storage>()

    private func storage(script: String, hook: String) -> Storage {
        series.value(for: "\(script)\u{0}\(hook)") { Storage() }
    }

    /// Adds one observation (for calls that are not per message).
    func record(script: String, hook: String, _ duration: Duration) {
        var tally = LuaCallTally()
        tally.add(duration)
        merge(script: script, hook: hook, tally)
    }

    /// Adds a batch of observations.
    func merge(script: String, hook: String, _ tally: LuaCallTally) {
        guard tally.count > 0 else { return }
        let target = storage(script: script, hook: hook)
        for (index, count) in tally.buckets.enumerated() where count > 0 {
            target.buckets[index].add(count)
        }
        target.count.add(tally.count)
        target.sumNanoseconds.add(tally.sumNanoseconds)
    }

    /// The family in Prometheus text format (cumulative buckets).
    func render() -> String {
        let all = series.snapshot
        var text = "# TYPE scheduler_lua_call_seconds histogram\n"
        for key in all.keys.sorted() {
            let parts = key.split(separator: "\u{0}", omittingEmptySubsequences: false)
            let labels = "script=\"\(parts[0])\",hook=\"\(parts[1])\""
            let storage = all[key]!
            var cumulative = 0
            for (index, bound) in Self.bounds.enumerated() {
                cumulative += storage.buckets[index].current
                text += "scheduler_lua_call_seconds_bucket{\(labels),le=\"\(bound)\"} \(cumulative)\n"
            }
            let count = storage.count.current
            text += "scheduler_lua_call_seconds_bucket{\(labels),le=\"+Inf\"} \(count)\n"
            text += "scheduler_lua_call_seconds_sum{\(labels)} \(Double(storage.sumNanoseconds.current) / 1e9)\n"
            text += "scheduler_lua_call_seconds_count{\(labels)} \(count)\n"
        }
        return text
    }
}

/// Per-worker, per-slice counts of Lua call durations (no synchronisation:
/// owned by one thread, merged into `LuaCallHistogram` at the slice end).
struct LuaCallTally {
    var buckets = [Int](repeating: 0, count: LuaCallHistogram.bounds.count)
    var count = 0
    var sum = Duration.zero

    /// The bounds as durations: comparing durations is cheap, while splitting
    /// one into seconds and attoseconds (an Int128 division) is not, and
    /// `add` runs once per message.
    private static let durationBounds: [Duration] = LuaCallHistogram.bounds.map { .nanoseconds(Int64(($0 * 1e9).rounded())) }

    var sumNanoseconds: Int {
        let (seconds, attoseconds) = sum.components
        return Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
    }

    mutating func add(_ duration: Duration) {
        if let index = Self.durationBounds.firstIndex(where: { duration <= $0 }) { buckets[index] += 1 }
        count += 1
        sum += duration
    }

    /// Adds the observations of `other`.
    mutating func merge(_ other: LuaCallTally) {
        for index in buckets.indices { buckets[index] += other.buckets[index] }
        count += other.count
        sum += other.sum
    }
}
