import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Scheduler

/// Keys `k0`, `k1`, ... whose lane among `lanes` is `lane` (the daemon's own rule).
func keys(inLane lane: Int, of lanes: Int, count: Int) -> [String] {
    let rule = KeyLanes(count: lanes)
    var found: [String] = []
    var index = 0
    while found.count < count {
        let key = "k\(index)"
        if rule.lane(forKey: Array(key.utf8)) == lane { found.append(key) }
        index += 1
    }
    return found
}

/// The group's first partition in `GET /groups`, as JSON.
func firstPartition(_ client: some TestClientProtocol) async throws -> [String: Any]? {
    let response = try await client.execute(uri: "/groups", method: .get)
    let groups = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [[String: Any]]
    return (groups?.first?["partitions"] as? [[String: Any]])?.first
}

@Suite("Key lanes: several workers on one partition, per-key order kept", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct KeyLanePoolTests {
    @Test("thousands of keys on one partition, 4 lanes, 6 workers, many handoffs: none lost, none doubled, per-key order kept, lanes worked side by side")
    func perKeyOrderAcrossLanes() async throws {
        let topic = try TestBroker.freshTopic("lanes", partitions: 1)
        let total = 12_000
        try await publishKeyed(topic: topic, count: total, keys: 3000)
        let capture = LogCapture()
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": seenProcessScript])
        var config = poolConfig(topics: [topic], workers: 6, sliceMs: 20)
        config.groups[0].lanes = 4
        let seen = try await withPool(config, scripts: scripts, logger: capture.logger) {
            await eventually(timeout: .seconds(60)) { capture.lines(startingWith: "seen ").count >= total }
            return capture.lines(startingWith: "seen ").compactMap(Seen.init)
        }
        #expect(seen.count == total, "processed \(seen.count) of \(total)")
        #expect(Set(seen.map(\.offset)).count == seen.count, "a message was processed twice")
        var lastSequence: [String: Int] = [:]
        for record in seen {
            let sequence = Int(record.payload.split(separator: ":")[1])!
            if let last = lastSequence[record.key] { #expect(sequence == last + 1, "key \(record.key): \(sequence) after \(last)") }
            lastSequence[record.key] = sequence
        }
        #expect(lastSequence.count == 3000)
        // One partition, yet several workers: the lanes were worked at once,
        // so the log is not in offset order.
        #expect(Set(seen.map(\.worker)).count >= 4, "workers that took part: \(Set(seen.map(\.worker)).sorted())")
        let offsets = seen.map(\.offset)
        #expect(offsets != offsets.sorted(), "the lanes never overtook one another")
        // Within a lane the order is the partition's, and each lane changed hands.
        let rule = KeyLanes(count: 4)
        for lane in 0..<4 {
            let records = seen.filter { rule.lane(forKey: Array($0.key.utf8)) == lane }
            #expect(records.map(\.offset) == records.map(\.offset).sorted(), "lane \(lane) out of offset order")
            let changes = zip(records, records.dropFirst()).filter { $0.worker != $1.worker }.count
            #expect(changes >= 2, "lane \(lane) changed hands \(changes) times")
        }
    }

    @Test("a slow lane holds the commit back but not the other lanes, which stop at lane_max_ahead until it catches up")
    func slowLane() async throws {
        let topic = try TestBroker.freshTopic("slow-lane", partitions: 1)
        let slowKey = keys(inLane: 0, of: 2, count: 1)[0]
        let fastKeys = keys(inLane: 1, of: 2, count: 20)
        let fast = 1500
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 10_000)
        var deliveries = [producer.enqueue(OutgoingMessage(topic: topic, key: Array(slowKey.utf8), value: Array("\(slowKey):0".utf8)))]
        for index in 0..<fast {
            let key = fastKeys[index % fastKeys.count]
            deliveries.append(producer.enqueue(OutgoingMessage(topic: topic, key: Array(key.utf8), value: Array("\(key):\(index / fastKeys.count)".utf8))))
        }
        for delivery in deliveries { _ = try await delivery.report() }
        await producer.close(timeoutMs: 5000)
        // The slow key's message (offset 0) fails twice; with the backoff it
        // holds its lane about 4.5 s, then succeeds.
        let capture = LogCapture()
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": """
            local tries = 0
            function process(msg)
              if msg.key == "\(slowKey)" then
                tries = tries + 1
                if tries < 3 then return false, "slow on purpose" end
              end
              scheduler.log("notice", "seen " .. msg.partition .. " " .. msg.offset .. " " .. tostring(msg.key) .. " " .. msg.payload)
            end
            """])
        var config = poolConfig(topics: [topic], workers: 3, sliceMs: 50)
        config.groups[0].lanes = 2
        config.groups[0].laneMaxAhead = 300
        config.groups[0].retryBackoffMs = 1500
        config.groups[0].maxAttempts = 5
        let app = try await buildApplication(LaunchOptions(config: config, scriptsDirectory: scripts, logger: capture.logger))
        try await app.test(.live) { client in
            func slowDone() -> Bool { capture.lines(startingWith: "seen 0 0 ").count > 0 }
            // While the slow message is retried, nothing is committed past it.
            var highestCommit: Int64 = -1
            await eventually(timeout: .seconds(60)) {
                if slowDone() { return true }
                let partition = try? await firstPartition(client)
                let committed = (partition?["committed"] as? Int).map(Int64.init) ?? -1
                if !slowDone() { highestCommit = max(highestCommit, committed) }
                return false
            }
            #expect(highestCommit <= 0, "committed \(highestCommit) past the slow lane's message at 0")
            // Then everything, committed to the end.
            await eventually(timeout: .seconds(30)) { capture.lines(startingWith: "seen ").count >= fast + 1 }
            await eventually(timeout: .seconds(30)) {
                let partition = try? await firstPartition(client)
                return (partition?["committed"] as? Int) == fast + 1
            }
            let partition = try await firstPartition(client)
            let lanes = partition?["lanes"] as? [[String: Any]]
            #expect(lanes?.count == 2)
        }
        let records = capture.lines(startingWith: "seen ")
        let seen = records.compactMap(Seen.init)
        #expect(Set(seen.map(\.offset)).count == fast + 1 && seen.count == fast + 1)
        #expect(capture.lines(startingWith: "process() failed").count == 2)
        // Meanwhile the other lane went on, up to the bound (read position at
        // most lane_max_ahead past the slow message, plus one fetch), and stopped there.
        let slowAt = try #require(records.first { $0.message.hasPrefix("seen 0 0 ") }).at
        let fastBefore = records.filter { $0.at < slowAt }.count
        #expect(fastBefore >= 299, "the fast lane waited for the slow one: \(fastBefore) processed meanwhile")
        #expect(fastBefore <= 300 + 256, "the fast lane ran \(fastBefore) past the slow one (bound 300 + one fetch)")
    }

    @Test("a partition revoked while its lanes are held by different workers: every lane is let go before the callback returns, nothing lost")
    func revokeHeldLanes() async throws {
        let topic = try TestBroker.freshTopic("lane-revoke", partitions: 2)
        let total = 4000
        try await publishKeyed(topic: topic, count: 3000, keys: 400)
        let group = "lrev-\(UUID().uuidString.prefix(6))"
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": seenProcess(busySeconds: 0.001)])
        var config = poolConfig(topics: [topic], workers: 4, sliceMs: 40, group: group)
        config.groups[0].lanes = 4
        config.groups[0].laneMaxAhead = 100
        let laneConfig = config
        let first = LogCapture()
        let second = LogCapture()
        let appOne = try await buildApplication(LaunchOptions(config: laneConfig, scriptsDirectory: scripts, logger: first.logger))
        try await appOne.test(.live) { _ in
            await eventually { first.lines(startingWith: "seen ").count >= 300 }
            let appTwo = try await buildApplication(LaunchOptions(config: laneConfig, scriptsDirectory: scripts, logger: second.logger))
            try await appTwo.test(.live) { _ in
                // More work once the second daemon has its partitions, so that
                // it has something to do however fast the first one was.
                await eventually(timeout: .seconds(60)) { !second.lines(startingWith: "partitions assigned").isEmpty }
                try await publishKeyed(topic: topic, count: total - 3000, keys: 400, startSequence: 3000)
                await eventually(timeout: .seconds(90)) {
                    let all = (first.lines(startingWith: "seen ") + second.lines(startingWith: "seen ")).compactMap(Seen.init)
                    return Set(all.map { "\($0.partition):\($0.offset)" }).count >= total
                }
            }
        }
        let revokes = first.lines(startingWith: "partitions revoked")
        try #require(!revokes.isEmpty, "the first daemon gave nothing up")
        let one = first.lines(startingWith: "seen ").compactMap { record in Seen(record).map { (at: record.at, seen: $0) } }
        let two = second.lines(startingWith: "seen ").compactMap(Seen.init)
        #expect(!two.isEmpty, "the second daemon never got a partition")
        let distinct = Set((one.map(\.seen) + two).map { "\($0.partition):\($0.offset)" })
        #expect(distinct.count == total, "lost \(total - distinct.count)")
        let moved = Set(two.map(\.partition))
        for partition in moved {
            let name = "\(topic)[\(partition)]"
            guard let revoke = revokes.first(where: { $0.message.contains(name) }) else {
                Issue.record("partition \(partition) moved without a revoke")
                continue
            }
            // Before the revoke, its lanes were worked by several workers at once ...
            let before = one.filter { $0.seen.partition == partition && $0.at <= revoke.at }
            #expect(Set(before.suffix(200).map(\.seen.worker)).count >= 2, "partition \(partition) had one worker before the revoke")
            // ... and once the callback returned, none of them processed another
            // message of it (until it was assigned back, if a later round did).
            let back = first.lines(startingWith: "partitions assigned").first { $0.at > revoke.at && $0.message.contains(name) }?.at
            let after = one.filter { entry in
                entry.seen.partition == partition && entry.at > revoke.at && (back.map { entry.at < $0 } ?? true)
            }
            #expect(after.isEmpty, "\(after.count) messages of revoked partition \(partition) processed after the revoke")
        }
        let duplicates = one.count + two.count - distinct.count
        // Processed again: per revoked partition, what its lanes finished above
        // the committed position (at most lane_max_ahead + one fetch of 256),
        // plus a message in flight per worker (leases pause while commits are
        // held for a rebalance).
        let revokedPartitions = revokes.reduce(0) { $0 + $1.message.components(separatedBy: "\(topic)[").count - 1 }
        // A revocation whose final commit the broker refused (the next round
        // had begun) leaves what the partition's lanes processed while the
        // group's commits were held (cooperative: leases go on for a fifth
        // of the session timeout) to be processed again as well.
        let holds = first.lines(startingWith: "group is rebalancing: commits wait").map(\.at)
        let refused = first.all.filter { $0.message.hasPrefix("final commit failed") }.map(\.at)
        var heldAtRefusedRevokes = 0
        for revoke in revokes where refused.contains(where: { $0 <= revoke.at && revoke.at - $0 < .seconds(1) }) {
            guard let heldSince = holds.last(where: { $0 <= revoke.at }) else { continue }
            heldAtRefusedRevokes += one.filter { entry in
                revoke.message.contains("\(topic)[\(entry.seen.partition)]") && entry.at >= heldSince && entry.at <= revoke.at
            }.count
        }
        let bound = revokedPartitions * (100 + 256) + 4 + heldAtRefusedRevokes
        print("lanes revoke: \(one.count + two.count) processed, \(duplicates) again of \(total) (bound \(bound): \(revokedPartitions) partitions revoked, \(heldAtRefusedRevokes) processed while commits were held before a refused revoke commit)")
        // On failure, say how the group moved: a revocation whose final
        // commit failed or an assignment lost leaves more to process again.
        let rebalances = first.all.filter { $0.message.hasPrefix("partitions ") || $0.level >= .warning }.map { "\($0.level): \($0.message)" }
        #expect(duplicates <= bound, "the first daemon's rebalances and warnings: \(rebalances.joined(separator: " | "))")
    }
}
