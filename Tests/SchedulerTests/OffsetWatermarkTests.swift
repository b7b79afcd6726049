import Testing
@testable import Scheduler

@Suite("Offset watermark: what may be committed with emits in flight", .sharesMachine)
struct OffsetWatermarkTests {
    @Test("with nothing in flight the next offset to process is committable")
    func nothingInFlight() {
        var mark = OffsetWatermark()
        mark.processed(offset: 10, emits: 0)
        #expect(mark.committable(processedUpTo: 11) == 11)
        #expect(mark.settled)
    }

    @Test("a message with unacknowledged emits holds the commit at its offset")
    func holdsAtFirstIncomplete() {
        var mark = OffsetWatermark()
        mark.processed(offset: 5, emits: 2)
        mark.processed(offset: 6, emits: 1)
        #expect(mark.committable(processedUpTo: 8) == 5)
        mark.settle(offset: 6, error: nil)
        #expect(mark.committable(processedUpTo: 8) == 5, "a later ack does not move past an earlier message")
        mark.settle(offset: 5, error: nil)
        #expect(mark.committable(processedUpTo: 8) == 5, "one of two emits is still in flight")
        mark.settle(offset: 5, error: nil)
        #expect(mark.committable(processedUpTo: 8) == 8)
        #expect(mark.count == 0)
    }

    @Test("acknowledgements in any order: committable never passes an incomplete message", arguments: [1, 2, 3, 4, 5])
    func randomOrder(seed: Int) {
        var generator = SeededGenerator(seed: UInt64(seed))
        var mark = OffsetWatermark()
        var outstanding: [(offset: Int64, left: Int)] = []
        for offset in Int64(0)..<300 {
            let emits = Int.random(in: 0...3, using: &generator)
            mark.processed(offset: offset, emits: emits)
            if emits > 0 { outstanding.append((offset, emits)) }
        }
        var acks = outstanding.flatMap { entry in Array(repeating: entry.offset, count: entry.left) }
        acks.shuffle(using: &generator)
        var left = Dictionary(outstanding.map { ($0.offset, $0.left) }, uniquingKeysWith: +)
        var last: Int64 = 0
        for offset in acks {
            mark.settle(offset: offset, error: nil)
            left[offset]! -= 1
            if left[offset] == 0 { left[offset] = nil }
            let expected = left.keys.min() ?? 300
            let committable = mark.committable(processedUpTo: 300)
            #expect(committable == expected)
            #expect(committable >= last, "the committable offset never goes back")
            last = committable
        }
        #expect(mark.settled && mark.count == 0)
    }

    @Test("a failed emit stops the watermark at its message, and the rewind starts there")
    func failureAndRewind() {
        var mark = OffsetWatermark()
        mark.processed(offset: 1, emits: 1)
        mark.processed(offset: 2, emits: 1)
        mark.processed(offset: 3, emits: 1)
        mark.settle(offset: 1, error: nil)
        mark.settle(offset: 3, error: nil)
        mark.settle(offset: 2, error: "Local: Message timed out")
        #expect(mark.settled)
        #expect(mark.committable(processedUpTo: 4) == 2)
        #expect(mark.firstFailure?.offset == 2)
        #expect(mark.rewind(to: 2) == 1)
        #expect(mark.count == 0, "messages from the failed one on are forgotten: they are processed again")
        #expect(mark.committable(processedUpTo: 2) == 2)
        #expect(mark.failedRounds(at: 2) == 1)
        #expect(mark.lastError(at: 2) == "Local: Message timed out")
        mark.processed(offset: 2, emits: 1)
        mark.settle(offset: 2, error: "again")
        #expect(mark.rewind(to: 2) == 2, "failed rounds add up across rewinds")
        mark.processed(offset: 2, emits: 1)
        mark.settle(offset: 2, error: nil)
        #expect(mark.failedRounds(at: 2) == 0, "a message whose emits finally succeed is forgotten")
    }

    @Test("the front is dropped without losing later entries (many acks)")
    func longRun() {
        var mark = OffsetWatermark()
        for offset in Int64(0)..<5000 { mark.processed(offset: offset, emits: 1) }
        for offset in Int64(0)..<4000 { mark.settle(offset: offset, error: nil) }
        #expect(mark.count == 1000)
        #expect(mark.committable(processedUpTo: 5000) == 4000)
        #expect(mark.pendingEmits == 1000)
        mark.settle(offset: 4500, error: nil)
        #expect(mark.committable(processedUpTo: 5000) == 4000)
    }
}

/// A small deterministic generator (SplitMix64), so failures can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
