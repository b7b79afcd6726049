import Foundation
import Testing
@testable import Scheduler

@Suite("Key lanes: the daemon killed", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct KeyLaneKillTests {
    @Test("SIGKILL with 4 lanes on one partition, then a restart: nothing lost; processed again exactly what was finished at or above the committed position")
    func killWithLanes() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: daemonBinary.path), "build the executable first (make test does)")
        let topic = try TestBroker.freshTopic("kill-lanes", partitions: 1)
        let total = 4000
        try await publishKeyed(topic: topic, count: total, keys: 1000)
        let scripts = try makeScripts([
            "generate.lua": idleGenerate,
            "process.lua": seenProcess(busySeconds: 0.0005),
        ])
        let configFile = try daemonConfig(next: scripts, topic: topic, group: "kill-lanes", workers: 4, sliceMs: 30,
                                          groupExtra: "lanes = 4\nlane_max_ahead = 200")
        func seen(_ daemon: DaemonProcess) -> [String] {
            daemon.lines.compactMap { line in line.range(of: "] seen ").map { String(line[$0.upperBound...]) } }
        }
        let first = try DaemonProcess(["--config", configFile.path, "--scripts", scripts])
        await eventually { seen(first).count >= total / 3 }
        kill(first.process.processIdentifier, SIGKILL)
        first.process.waitUntilExit()
        let beforeKill = seen(first)
        // What the dead daemon had committed: the restart resumes there.
        let committed = try await committedOffsets(configFile: configFile, topic: topic, partitions: 1)[0]
        let offsets = beforeKill.compactMap { Int64($0.split(separator: " ")[1]) }
        let finishedAbove = offsets.filter { $0 >= committed }.count

        let second = try DaemonProcess(["--config", configFile.path, "--scripts", scripts])
        await eventually(timeout: .seconds(60)) { Set(beforeKill + seen(second)).count >= total }
        #expect(await second.terminate() == 0)
        let all = beforeKill + seen(second)
        let distinct = Set(all)
        #expect(distinct.count == total, "lost \(total - distinct.count)")
        let duplicates = all.count - distinct.count
        print("SIGKILL with lanes after \(beforeKill.count) messages (committed \(committed), \(finishedAbove) finished above it): \(duplicates) processed again")
        #expect(committed > 0, "nothing was committed before the kill")
        // The restart reads every lane again from the committed position: exactly
        // what fast lanes had finished at or above it is processed again.
        #expect(duplicates == finishedAbove, "processed again \(duplicates); finished at or above the committed position \(finishedAbove)")
        // Per key, the first processing of each message is in the key's order.
        var firstOrder: [String: [Int]] = [:]
        var done: Set<String> = []
        for line in all where done.insert(line).inserted {
            let parts = line.split(separator: " ")
            guard parts.count == 4 else { continue }
            let payload = parts[3].split(separator: ":")
            firstOrder[String(payload[0]), default: []].append(Int(payload[1]) ?? -1)
        }
        for (key, order) in firstOrder { #expect(order == order.sorted(), "key \(key) out of order") }
    }
}
