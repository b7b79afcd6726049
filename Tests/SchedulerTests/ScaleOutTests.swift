import Foundation
import Testing
@testable import Scheduler

@Suite("Two daemons in one group", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct ScaleOutTests {
    /// What one run of two daemons sharing a group did.
    struct Run {
        let total: Int
        let seen: [(app: String, at: ContinuousClock.Instant, seen: Seen)]
        let first: LogCapture
        let second: LogCapture
        var distinct: Int { Set(seen.map { "\($0.seen.partition):\($0.seen.offset)" }).count }
        var duplicates: Int { seen.count - distinct }
    }

    /// Publishes `total` keyed messages, starts one daemon, and a second in the
    /// same group once the first is busy; runs until every message was seen.
    static func run(strategy: String?, total: Int = 3000) async throws -> Run {
        let topic = try TestBroker.freshTopic("scale")
        try await publishKeyed(topic: topic, count: total, keys: 64)
        let group = "scale-\(UUID().uuidString.prefix(6))"
        // About 4 ms of CPU per message, so the work still goes on through
        // the rebalance rounds after the second daemon joins (cooperative: two).
        let scripts = try makeScripts([
            "generate.lua": idleGenerate,
            "process.lua": seenProcess(busySeconds: 0.004),
        ])
        var base = poolConfig(topics: [topic], workers: 2, sliceMs: 50, group: group)
        if let strategy { base.kafka.properties["partition.assignment.strategy"] = strategy }
        let config = base
        let first = LogCapture()
        let second = LogCapture()
        @Sendable func distinctSeen() -> Int {
            Set((first.lines(startingWith: "seen ") + second.lines(startingWith: "seen ")).compactMap(Seen.init).map { "\($0.partition):\($0.offset)" }).count
        }
        let appOne = try await buildApplication(LaunchOptions(config: config, scriptsDirectory: scripts, logger: first.logger))
        try await appOne.test(.live) { _ in
            await eventually { first.lines(startingWith: "seen ").count >= 200 }
            let appTwo = try await buildApplication(LaunchOptions(config: config, scriptsDirectory: scripts, logger: second.logger))
            try await appTwo.test(.live) { _ in
                await eventually(timeout: .seconds(90)) { distinctSeen() >= total }
            }
        }
        let records = first.lines(startingWith: "seen ").map { ("one", $0) } + second.lines(startingWith: "seen ").map { ("two", $0) }
        let seen = records.compactMap { app, record in Seen(record).map { (app: app, at: record.at, seen: $0) } }
        return Run(total: total, seen: seen, first: first, second: second)
    }

    /// What may be processed twice around one rebalance round: after the
    /// last commit the broker accepted, each of the first daemon's two workers
    /// goes on for at most one commit interval (100 ms) and one poll of the
    /// refusal (50 ms), about 37 messages at 4 ms each, plus its message in
    /// flight; then the refusal pauses every lease.
    static let inFlightBound = 2 * (37 + 1)

    @Test("they split the partitions and never process one partition at the same time; nothing lost; cooperative-sticky (set in [kafka.properties]): duplicates at most the messages in flight")
    func cooperative() async throws {
        let run = try await Self.run(strategy: "cooperative-sticky")
        Self.checkSplit(run, rounds: 1)
        // The revoke callback commits synchronously once the leases of the
        // revoked partitions ended; the group accepts it when the round that
        // moved them has completed (usually: 0 duplicates). When another round
        // has already begun, the commit is refused and the bound applies.
        print("scale-out (cooperative-sticky): \(run.seen.count) processed, \(run.duplicates) duplicates of \(run.total)")
        #expect(run.duplicates <= Self.inFlightBound, "\(run.duplicates) of \(run.total) messages processed twice")
    }

    @Test("with the eager assignor (the default before librdkafka 2.3.0) they still split the partitions; duplicates only around the rebalance")
    func eager() async throws {
        let run = try await Self.run(strategy: "range,roundrobin")
        // The join may take up to three rounds when the whole suite loads the machine.
        Self.checkSplit(run, rounds: 3)
        // Eager: every partition is revoked at the start of the rebalance, when
        // the mock broker already refuses commits; what was processed since
        // the last accepted commit is processed again, in each of up to two
        // rounds that move partitions.
        print("scale-out (eager): \(run.seen.count) processed, \(run.duplicates) duplicates of \(run.total)")
        #expect(run.duplicates <= 2 * Self.inFlightBound, "\(run.duplicates) of \(run.total) messages processed twice")
    }

    /// `rounds`: rebalance rounds after which a daemon may resume a
    /// partition from its last commit.
    static func checkSplit(_ run: Run, rounds: Int, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(run.second.lines(startingWith: "seen ").count > 0, "the second daemon never got a partition", sourceLocation: sourceLocation)
        #expect(run.first.all.contains { $0.message.hasPrefix("partitions revoked") }, "the first daemon gave nothing up", sourceLocation: sourceLocation)
        #expect(run.distinct == run.total, "lost \(run.total - run.distinct) messages", sourceLocation: sourceLocation)
        for partition in Int32(0)..<4 {
            let timeline = run.seen.filter { $0.seen.partition == partition }.sorted { $0.at < $1.at }
            // One partition, one daemon at a time: the holder changes only at
            // a rebalance, never back and forth message by message as
            // concurrent processing would.
            let switches = zip(timeline, timeline.dropFirst()).filter { $0.app != $1.app }.count
            #expect(switches <= 2, "partition \(partition) switched daemons \(switches) times", sourceLocation: sourceLocation)
            // Within one daemon the offsets only go forward, except where a
            // rebalance made it resume from the last commit.
            for app in ["one", "two"] {
                let offsets = timeline.filter { $0.app == app }.map(\.seen.offset)
                let backwards = zip(offsets, offsets.dropFirst()).filter { $0 >= $1 }.count
                #expect(backwards <= rounds, "partition \(partition) on daemon \(app) went back \(backwards) times", sourceLocation: sourceLocation)
            }
        }
    }
}
