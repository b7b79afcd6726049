import Foundation
import Testing
@testable import Scheduler

@Suite("Key lanes: failed emits", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct KeyLaneEmitTests {
    @Test("emits refused in a lane: only that lane is read again, the other lanes skip what they had; every input's emit arrives, per-key order kept")
    func refusedEmitsInALane() async throws {
        var rig = try await EmitRig(partitions: 1, total: 2000, keys: 200, workers: 3, busySeconds: 0.0002)
        let (broker, capture) = (rig.broker, rig.capture)
        defer { broker.shutdown() }
        rig.config.groups[0].lanes = 4
        rig.config.groups[0].maxAttempts = 5
        rig.config.groups[0].retryBackoffMs = 10
        try await withPool(rig.config, scripts: rig.scripts, logger: capture.logger) { [rig] in
            #expect(await eventually { capture.lines(startingWith: "seen ").count >= 100 })
            broker.failNext(.produce, count: 3, code: 87)  // INVALID_RECORD
            let complete = try await eventually(timeout: .seconds(60)) { try await rig.complete() }
            #expect(complete, "every input's emit reached the output")
        }
        let rewinds = capture.all.filter { $0.message.hasPrefix("emits of offset") && $0.message.contains("reading") }
        try #require(!rewinds.isEmpty, "the failure was seen and a lane read again")
        // The earliest offset each lane was read again from.
        let rewindFrom = Dictionary(rewinds.compactMap { record -> (Int, Int64)? in
            guard let lane = record.metadata[LogKey.lane].flatMap({ Int($0) }), let offset = record.metadata[LogKey.offset].flatMap({ Int64($0) }) else { return nil }
            return (lane, offset)
        }, uniquingKeysWith: min)
        let rule = KeyLanes(count: 4)
        let output = try await rig.output()
        var counts: [Int64: Int] = [:]
        var lastPerKey: [[UInt8]: Int64] = [:]
        var backwards: [String] = []
        for message in output {
            let offset = Int64(message.value.utf8String.split(separator: ":")[1])!
            counts[offset, default: 0] += 1
            let key = message.key ?? []
            let lane = rule.lane(forKey: key)
            if let last = lastPerKey[key], offset <= last {
                // A key goes back only in a lane that was read again, to at or after where it went back to.
                if rewindFrom[lane].map({ offset >= $0 }) != true { backwards.append("\(String(decoding: key, as: UTF8.self)) \(offset) after \(last)") }
            }
            lastPerKey[key] = offset
        }
        #expect(backwards.isEmpty, "per-key order broken outside a rewound lane: \(backwards.prefix(5))")
        for (offset, count) in counts where count > 1 {
            // Duplicates only in a rewound lane, at or after its rewind: the other lanes dropped what they had.
            let key = output.first { Int64($0.value.utf8String.split(separator: ":")[1]) == offset }?.key ?? []
            let lane = rule.lane(forKey: key)
            #expect(rewindFrom[lane].map { offset >= $0 } == true, "offset \(offset) (lane \(lane)) emitted \(count) times without a rewind of its lane at or before it")
        }
        #expect(Set(counts.keys).count == 2000)
        #expect(capture.all.allSatisfy { !$0.message.contains("dead-lettered") }, "a transient refusal dead-letters nothing")
    }
}
