import Foundation
import Testing
@testable import Scheduler

/// A report of daemon `id` made at `atMs`.
func report(_ id: String, atMs: Int64, state: String = "running", intervalMs: Int = 1000, schedulePartitions: [Int32] = []) -> DaemonReport {
    DaemonReport(id: id, host: "h", pid: 1, version: DaemonIdentity.version, api: nil, state: state, started_at: RFC3339.format(0),
                 at: RFC3339.format(atMs), at_ms: atMs, uptime_ms: atMs, interval_ms: intervalMs, groups: [],
                 schedule_partitions: schedulePartitions, schedules_owned: 0, publishes_pool: false,
                 rates: RatesReport(processed_per_s: 0, published_per_s: 0, window_ms: 0), scripts: [], last_reload: nil)
}

@Suite("Cluster view rules", .sharesMachine)
struct ClusterTableTests {
    @Test("a daemon's standing: live while it reports, stopping when it says so, gone when stopped or silent for three intervals",
          arguments: [
              // (state, report made at, received at, now, interval, expected, reason)
              ("running", 10_000, 10_000, 10_500, 1000, "live", nil),
              ("running", 10_000, 10_000, 13_000, 1000, "live", nil),
              ("running", 10_000, 10_000, 13_001, 1000, "gone", "silent"),
              ("running", 10_000, 10_000, 19_000, 5000, "live", nil),
              ("stopping", 10_000, 10_000, 10_500, 1000, "stopping", nil),
              ("stopping", 10_000, 10_000, 14_000, 1000, "gone", "silent"),
              ("stopped", 10_000, 10_000, 10_001, 1000, "gone", "stopped"),
              // Read back from history at start: its own time counts, not the arrival.
              ("running", 10_000, 60_000, 60_000, 1000, "gone", "silent"),
              // A clock ahead of ours: the arrival counts.
              ("running", 90_000, 10_000, 13_500, 1000, "gone", "silent"),
          ] as [(String, Int64, Int64, Int64, Int, String, String?)])
    func standing(_ state: String, _ atMs: Int64, _ receivedMs: Int64, _ nowMs: Int64, _ interval: Int, _ expected: String, _ reason: String?) {
        var table = ClusterTable()
        table.apply(report("d", atMs: atMs, state: state, intervalMs: interval), receivedMs: receivedMs)
        let known = table.daemons["d"]!
        #expect(ClusterTable.status(known, nowMs: nowMs).rawValue == expected)
        #expect(ClusterTable.goneReason(known, nowMs: nowMs) == reason)
    }

    @Test("only the latest report per daemon is kept; an older one arriving late changes nothing; a tombstone forgets")
    func latestOnly() {
        var table = ClusterTable()
        for at in stride(from: Int64(1000), through: 100_000, by: 1000) { table.apply(report("a", atMs: at), receivedMs: at) }
        table.apply(report("a", atMs: 5000, state: "stopped"), receivedMs: 100_001)
        #expect(table.daemons.count == 1 && table.daemons["a"]?.report.at_ms == 100_000 && table.daemons["a"]?.report.state == "running")
        table.remove(id: "a")
        #expect(table.daemons.isEmpty)
    }

    @Test("daemons gone for ten minutes are forgotten; present ones and recently gone ones stay")
    func forgetting() {
        var table = ClusterTable()
        table.apply(report("old", atMs: 0), receivedMs: 0)
        table.apply(report("stopped-recently", atMs: 500_000, state: "stopped"), receivedMs: 500_000)
        table.apply(report("live", atMs: 700_000), receivedMs: 700_000)
        table.forget(nowMs: 700_500)
        #expect(Set(table.daemons.keys) == ["stopped-recently", "live"])
        table.forget(nowMs: 1_300_001)
        #expect(table.daemons.isEmpty)
    }

    @Test("a schedule partition's owner: the present daemon listing it, the latest to report it while it moves, none when its holder is gone")
    func owners() {
        var table = ClusterTable()
        table.apply(report("a", atMs: 10_000, schedulePartitions: [0, 1]), receivedMs: 10_000)
        table.apply(report("b", atMs: 10_500, schedulePartitions: [1, 2]), receivedMs: 10_500)
        table.apply(report("c", atMs: 10_600, state: "stopped", schedulePartitions: [3]), receivedMs: 10_600)
        #expect(table.scheduleOwners([0, 1, 2, 3], nowMs: 11_000) == [0: "a", 1: "b", 2: "b"])
        // a went silent: its partitions have no owner until someone reports them.
        #expect(table.scheduleOwners([0, 1], nowMs: 13_200) == [1: "b"])
    }

    @Test("rates are taken over the span that has samples, up to ten seconds")
    func rateWindow() {
        var window = RateWindow(spanMs: 10_000)
        #expect(window.rates.window_ms == 0)
        window.add(.init(ms: 0, processed: 0, published: 0))
        window.add(.init(ms: 1000, processed: 0, published: 0))
        window.add(.init(ms: 2000, processed: 4, published: 4))
        #expect(window.rates == RatesReport(processed_per_s: 2, published_per_s: 2, window_ms: 2000))
        for second in 3...30 { window.add(.init(ms: Int64(second) * 1000, processed: Double(second) * 4, published: 0)) }
        #expect(window.samples.count <= 12)
        #expect(window.rates.processed_per_s == 4 && window.rates.window_ms == 10_000)
    }

    @Test("the schedule catalog keeps every schedule's latest record, forgets tombstoned ones, skips what is not a schedule, lists earliest due first")
    func catalog() throws {
        var catalog = ScheduleCatalog()
        catalog.setPartitions([0, 1])
        let placement = SchedulePlacement(topic: "s", partitions: 2, publish: nil)
        var made: [Schedule] = []
        for index in 0..<5 {
            let (schedule, message) = try placement.create(task: TaskSpec(topic: "t", message: "m\(index)"), kind: .at(10_000 - Int64(index)), now: 0)
            made.append(schedule)
            let applied = catalog.apply(id: schedule.id, partition: message.partition!, value: message.value)
            #expect(applied)
        }
        let skipped = !catalog.apply(id: "x", partition: 0, value: Array("not json".utf8))
        #expect(skipped)
        catalog.apply(id: made[0].id, partition: 0, value: nil)
        #expect(catalog.count == 4)
        #expect(catalog.schedules().map(\.schedule.message) == ["m4", "m3", "m2", "m1"])
        #expect(!catalog.isLive)
        catalog.markLive(0)
        catalog.markLive(1)
        #expect(catalog.isLive)
    }
}

/// Measures the resident set, which every test running at the same time
/// moves: run alone, `MEMORY_FIGURES=1 swift test --filter ScheduleCatalogMemoryTests`.
@Suite("Schedule catalog memory", .serialized, .sharesMachine)
struct ScheduleCatalogMemoryTests {
    @Test("a schedule in the catalog costs a few hundred bytes (id, partition, due time, its record), below the owner's table",
          .enabled(if: ProcessInfo.processInfo.environment["MEMORY_FIGURES"] != nil, "measures the resident set: run alone with MEMORY_FIGURES=1"))
    func bytesPerSchedule() throws {
        let count = 100_000
        // The record as the API writes it, made inside the loop: building
        // them all first would free memory the catalog then reuses unseen.
        let placement = SchedulePlacement(topic: "s", partitions: 4, publish: nil)
        let (sample, _) = try placement.create(task: TaskSpec(topic: "bench-fired", message: String(repeating: "x", count: 32), key: "k1"),
                                               kind: .at(4_000_000_000_000), now: 0)
        let template = ScheduleRecord.schedule(sample).message(topic: "s", partitions: 4).value.utf8String
        let before = residentBytes()
        var catalog = ScheduleCatalog()
        for index in 0..<count {
            let id = "s-" + UUID().uuidString.lowercased()
            let json = template.replacingOccurrences(of: sample.id, with: id).replacingOccurrences(of: "\"k1\"", with: "\"k\(index % 100)\"")
            catalog.apply(id: id, partition: ScheduleRecord.partition(of: id, partitions: 4), value: Array(json.utf8))
        }
        let perSchedule = Double(residentBytes() - before) / Double(count)
        withExtendedLifetime(catalog) {}
        print("schedule catalog: \(Int(perSchedule)) bytes per schedule (\(count) schedules, 32-byte message)")
        #expect(catalog.count == count)
        #expect(perSchedule < 500, "\(perSchedule) bytes per schedule")
    }

    /// Resident set size of this process (/proc/self/statm).
    private func residentBytes() -> Int {
        let text = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? ""
        let pages = text.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

@Suite("Schedule catalog keys", .sharesMachine)
struct ScheduleCatalogKeyTests {
    @Test("the scheduler's ids are kept as their UUID's 16 bytes and come back unchanged; any other id is kept as text",
          arguments: [
              ("s-3f0c2a4e-8b1d-4c6e-9f2a-0b1c2d3e4f50", true),
              ("s-3F0C2A4E-8B1D-4C6E-9F2A-0B1C2D3E4F50", false),
              ("s-3f0c2a4e8b1d4c6e9f2a0b1c2d3e4f50", false),
              ("x-3f0c2a4e-8b1d-4c6e-9f2a-0b1c2d3e4f50", false),
              ("s-not-a-uuid", false),
              ("", false),
          ])
    func keys(_ id: String, _ compact: Bool) {
        let key = ScheduleCatalog.Key(id)
        #expect(key.id == id)
        if case .uuid = key { #expect(compact) } else { #expect(!compact) }
        #expect(ScheduleCatalog.Key(id) == key && ScheduleCatalog.Key(id + "x") != key)
    }
}

private extension Schedule {
    var message: String { task.message }
}
