import Testing
@testable import Scheduler

@Suite("Key lanes: the lane rule and the partition's position across lanes", .sharesMachine)
struct KeyLaneTests {
    @Test("FNV-1a matches the published test vectors, so lanes are stable across processes")
    func fnvVectors() {
        func hash(_ text: String) -> UInt32 { Array(text.utf8).withUnsafeBytes { KeyLanes.fnv1a($0) } }
        #expect(hash("") == 0x811C_9DC5)
        #expect(hash("a") == 0xE40C_292C)
        #expect(hash("foobar") == 0xBF9C_F968)
    }

    @Test("a key always gets the same lane; no key is lane 0; one lane is lane 0 for all")
    func laneRule() {
        let four = KeyLanes(count: 4)
        for index in 0..<500 {
            let key = Array("key-\(index)".utf8)
            let lane = four.lane(forKey: key)
            #expect((0..<4).contains(lane))
            #expect(four.lane(forKey: key) == lane)
            #expect(lane == Int(key.withUnsafeBytes { KeyLanes.fnv1a($0) } % 4))
            #expect(KeyLanes(count: 1).lane(forKey: key) == 0)
        }
        #expect(four.lane(forKey: nil as [UInt8]?) == 0)
        #expect(KeyLanes(count: 0).count == 1, "a count below 1 means one lane")
    }

    @Test("1,000 keys spread over 4 lanes without a lane left empty or holding most keys")
    func spread() {
        let lanes = KeyLanes(count: 4)
        var counts = [0, 0, 0, 0]
        for index in 0..<1000 { counts[lanes.lane(forKey: Array("key-\(index)".utf8))] += 1 }
        #expect(counts.allSatisfy { $0 > 150 && $0 < 350 }, "\(counts)")
    }

    @Test("the position is the lowest offset unfinished in any lane")
    func lowestAcrossLanes() {
        var ledger = LaneLedger(lanes: 2, maxAhead: 100)
        #expect(ledger.lowestUnfinished == -1, "unknown before anything was read")
        for offset in Int64(10)..<16 {
            let taken = ledger.split(offset: offset, lane: Int(offset % 2))
            #expect(taken)
        }
        ledger.splitThrough(next: 16)
        #expect(ledger.lowestUnfinished == 10)
        ledger.finished(lane: 1, through: 15)  // the odd lane ran ahead: 11, 13, 15
        #expect(ledger.lowestUnfinished == 10, "lane 0 still has 10")
        ledger.finished(lane: 0, through: 12)
        #expect(ledger.lowestUnfinished == 14)
        #expect(ledger.lowestUnfinished(lane: 1) == 16, "an empty lane has finished everything read so far")
        ledger.finished(lane: 0, through: 14)
        #expect(ledger.lowestUnfinished == 16)
    }

    @Test("a lane that got none of a batch does not hold the position back")
    func emptyLane() {
        var ledger = LaneLedger(lanes: 4, maxAhead: 100)
        for offset in Int64(0)..<5 { _ = ledger.split(offset: offset, lane: 2) }
        ledger.splitThrough(next: 5)
        #expect(ledger.lowestUnfinished == 0)
        ledger.finished(lane: 2, through: 4)
        #expect(ledger.lowestUnfinished == 5)
        #expect((0..<4).map { ledger.unfinishedCount(lane: $0) } == [0, 0, 0, 0])
    }

    @Test("the fetch may run ahead of the position by at most max_ahead; then the fast lanes wait")
    func aheadBound() {
        var ledger = LaneLedger(lanes: 2, maxAhead: 10)
        #expect(ledger.mayFetch)
        // Lane 0 is slow: its first message stays unfinished.
        for offset in Int64(0)..<10 { _ = ledger.split(offset: offset, lane: Int(offset % 2)) }
        ledger.splitThrough(next: 10)
        ledger.finished(lane: 1, through: 9)
        #expect(ledger.ahead == 10)
        #expect(!ledger.mayFetch, "10 offsets ahead of the slow lane's 0: no more reading")
        ledger.finished(lane: 0, through: 0)
        #expect(ledger.ahead == 8)
        #expect(ledger.mayFetch)
    }

    @Test("a lane read again from a failed emit: its later messages are forgotten, the other lanes drop what they already had")
    func rewind() {
        var ledger = LaneLedger(lanes: 2, maxAhead: 100)
        for offset in Int64(0)..<8 { _ = ledger.split(offset: offset, lane: Int(offset % 2)) }
        ledger.splitThrough(next: 8)
        ledger.finished(lane: 0, through: 6)  // 0, 2, 4, 6 done
        ledger.finished(lane: 1, through: 1)  // 1 done; 3, 5, 7 waiting
        ledger.rewind(lane: 0, to: 2)  // the emits of 2 failed
        #expect(ledger.lowestUnfinished(lane: 0) == 2)
        #expect(ledger.lowestUnfinished == 2)
        #expect(ledger.splitNext == 2)
        // The partition is read again from 2: lane 1 already has 3, 5, 7.
        var kept: [Int64] = []
        for offset in Int64(2)..<10 where ledger.split(offset: offset, lane: Int(offset % 2)) { kept.append(offset) }
        ledger.splitThrough(next: 10)
        #expect(kept == [2, 4, 6, 8, 9])
        #expect(ledger.unfinishedCount(lane: 0) == 4 && ledger.unfinishedCount(lane: 1) == 4)
        #expect(ledger.lowestUnfinished == 2)
    }

    @Test("after a rewind, messages fetched before the seek are dropped (not counted as read) until the re-read begins")
    func staleAfterRewind() {
        var ledger = LaneLedger(lanes: 2, maxAhead: 100)
        for offset in Int64(0)..<10 { _ = ledger.split(offset: offset, lane: Int(offset % 2)) }
        ledger.splitThrough(next: 10)
        ledger.finished(lane: 0, through: 8)
        ledger.rewind(lane: 0, to: 4)
        // 10 and 11 were in librdkafka's queue before the seek.
        #expect(!ledger.isCurrent(offset: 10) && !ledger.isCurrent(offset: 11))
        #expect(ledger.splitNext == 4 && ledger.lowestUnfinished(lane: 0) == 4, "stale messages moved nothing")
        // The re-read from 4: lane 0 takes 4, 6, 8; lane 1 already had 5, 7, 9.
        var taken: [Int64] = []
        for offset in Int64(4)..<12 where ledger.isCurrent(offset: offset) && ledger.split(offset: offset, lane: Int(offset % 2)) { taken.append(offset) }
        #expect(taken == [4, 6, 8, 10, 11])
    }

    @Test("two lanes rewound before the partition is read again: reading restarts at the earlier offset, each lane takes from its own")
    func twoRewinds() {
        var ledger = LaneLedger(lanes: 2, maxAhead: 100)
        for offset in Int64(0)..<10 { _ = ledger.split(offset: offset, lane: Int(offset % 2)) }
        ledger.splitThrough(next: 10)
        ledger.finished(lane: 0, through: 8)
        ledger.finished(lane: 1, through: 9)
        ledger.rewind(lane: 1, to: 3)
        #expect(ledger.rewindTarget(6) == 3, "not past lane 1's rewind, which is not read again yet")
        ledger.rewind(lane: 0, to: 6)
        #expect(ledger.splitNext == 3)
        var taken: [Int64] = []
        for offset in Int64(3)..<12 where ledger.isCurrent(offset: offset) && ledger.split(offset: offset, lane: Int(offset % 2)) { taken.append(offset) }
        #expect(taken == [3, 5, 6, 7, 8, 9, 10, 11])
    }

    @Test("random finishing orders: the position never passes an unfinished offset", arguments: [1, 2, 3])
    func randomised(seed: Int) {
        var generator = SeededGenerator(seed: UInt64(seed))
        let lanes = 4
        var ledger = LaneLedger(lanes: lanes, maxAhead: 64)
        var queues: [[Int64]] = Array(repeating: [], count: lanes)
        var next: Int64 = 0
        for _ in 0..<3000 {
            if ledger.mayFetch && Bool.random(using: &generator) {
                let count = Int.random(in: 1...8, using: &generator)
                for offset in next..<(next + Int64(count)) {
                    let lane = Int.random(in: 0..<lanes, using: &generator)
                    let taken = ledger.split(offset: offset, lane: lane)
                    #expect(taken)
                    queues[lane].append(offset)
                }
                next += Int64(count)
                ledger.splitThrough(next: next)
            } else {
                let lane = Int.random(in: 0..<lanes, using: &generator)
                guard !queues[lane].isEmpty else { continue }
                let take = Int.random(in: 1...queues[lane].count, using: &generator)
                let done = queues[lane].prefix(take)
                ledger.finished(lane: lane, through: done.last!)
                queues[lane].removeFirst(take)
            }
            let position = ledger.lowestUnfinished
            #expect(position <= next)
            // Everything below the lowest offset still waiting in some lane is finished.
            let lowestWaiting = queues.compactMap(\.first).min() ?? next
            #expect(position == lowestWaiting)
            #expect(ledger.ahead <= 64 + 8)
        }
    }

    @Test("the rotation rules lease the lanes of one partition to different workers; a revoke stops every lane and is released only once all let go")
    func laneSlots() {
        var rig = RotationRig(workers: 4)
        let lanes = (0..<4).map { SlotKey(TopicPartition(topic: "A", partition: 0), lane: $0) }
        rig.facts.work.formUnion(lanes)
        let grants = rig.send(.assigned(lanes))
        #expect(grants.count == 4 && grants.allSatisfy { $0.hasPrefix("grant w") }, "\(grants)")
        #expect(Set(rig.state.leases.values.map(\.slot)) == Set(lanes), "each lane has its own lease")
        #expect(Set(rig.state.leases.keys).count == 4, "on four different workers")
        let stops = rig.send(.revoking(Set(lanes), ticket: 1))
        #expect(stops.sorted() == ["stop w0 revoked", "stop w1 revoked", "stop w2 revoked", "stop w3 revoked"])
        let holders = rig.state.leases.keys.sorted()
        for worker in holders.dropLast() {
            #expect(rig.end(worker, .revoked).isEmpty, "released while lanes are still held")
        }
        #expect(rig.end(holders.last!, .revoked) == ["release #1 A0 A0#1 A0#2 A0#3"])
    }

    @Test("rotate() answers name a lane: the lane asked for, or with a partition only, the lane that ended")
    func laneAnswers() {
        var rig = RotationRig(workers: 3)
        let lanes = (0..<2).map { SlotKey(TopicPartition(topic: "A", partition: 0), lane: $0) }
        rig.facts.work.formUnion(lanes)
        rig.send(.assigned(lanes))
        let idle = (0..<3).first { rig.state.leases[$0] == nil }!
        let laneZero = rig.state.leases.values.first { $0.slot.lane == 0 }!.worker
        let laneOne = rig.state.leases.values.first { $0.slot.lane == 1 }!.worker
        rig.policy.answers = [.pick(worker: "g-\(idle)", topic: "A", partition: 0, lane: 1)]
        #expect(rig.boundary(laneZero).contains("rejected rotate(): partition A[0]#1 is held by another worker"))
        rig.policy.answers = [.pick(worker: "g-\(idle)", lane: 1)]
        let noPartition = rig.boundary(laneOne)
        #expect(noPartition.contains("rejected rotate(): field 'partition' must be given with 'lane'"), "\(noPartition)")
    }

    @Test("with a partition but no lane, the lane whose slice ended is handed on")
    func laneHandoff() {
        var rig = RotationRig(workers: 3)
        let lanes = (0..<2).map { SlotKey(TopicPartition(topic: "A", partition: 0), lane: $0) }
        rig.facts.work.formUnion(lanes)
        rig.send(.assigned(lanes))
        let idle = (0..<3).first { rig.state.leases[$0] == nil }!
        let laneOne = rig.state.leases.values.first { $0.slot.lane == 1 }!.worker
        rig.policy.answers = [.pick(worker: "g-\(idle)", topic: "A", partition: 0)]
        #expect(rig.boundary(laneOne) == ["grant w\(idle) A0#1 from w\(laneOne)"])
    }
}
