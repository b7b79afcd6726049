import Foundation
import Synchronization
import Testing
@testable import Scheduler

/// A seek that cannot reach the broker: it waits its timeout, then fails.
private struct Unreachable: Error, CustomStringConvertible {
    var description: String { "broker unreachable (test)" }
}

@Suite("Partition feed: no lock across blocking calls", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct PartitionFeedTurnTests {
    /// A feed with two key lanes on a fresh one-partition topic (the queue of
    /// a consumer assigned to it; nothing is produced, so reads find nothing).
    private func makeFeed() throws -> (PartitionFeed, KafkaConsumer) {
        let topic = try TestBroker.freshTopic("turn", partitions: 1)
        let consumer = try KafkaConsumer.make(bootstrapServers: TestBroker.shared.bootstrapServers, groupID: "turn-\(UUID().uuidString.prefix(6))")
        try consumer.assign([PartitionOffset(topic: topic, partition: 0, offset: PartitionOffset.beginning)])
        let queue = try #require(consumer.partitionQueue(topic: topic, partition: 0))
        let feed = PartitionFeed(partition: TopicPartition(topic: topic, partition: 0), queue: queue, budget: EmitBudget(limit: 10), lanes: 2)
        return (feed, consumer)
    }

    @Test("while lane 0's rewind waits on an unreachable broker, lane 1's holder reads on its own deadline, a revoke's stop ends every wait within its bound",
          .timeLimit(.minutes(1)))
    func revokeDuringUnreachableRewind() async throws {
        let (feed, consumer) = try makeFeed()
        let seekMs = 1500
        let stop = StopSignal()
        let inSeek = Atomic<Bool>(false)
        let rewinderDone = DispatchSemaphore(value: 0)
        let rewinderEnded = Mutex<ContinuousClock.Instant?>(nil)
        // Lane 0's holder, as Worker.recoverFromFailedEmit: one seek per
        // turn, a pause outside it, until the seek works or it is told to stop.
        Thread.detachNewThread {
            rewinding: while true {
                let outcome = feed.rewind(lane: 0, to: 0, stop: stop) { _ in
                    inSeek.store(true, ordering: .relaxed)
                    defer { inSeek.store(false, ordering: .relaxed) }
                    Thread.sleep(forTimeInterval: Double(seekMs) / 1000)
                    throw Unreachable()
                }
                switch outcome {
                case .done, .stopped: break rewinding
                case .failed: if stop.wait(until: .now + .milliseconds(200)) { break rewinding }
                }
            }
            rewinderEnded.withLock { $0 = .now }
            rewinderDone.signal()
        }
        #expect(await eventually(timeout: .seconds(10)) { inSeek.load(ordering: .relaxed) })

        // Lane 1's holder is not held by lane 0's seek: it comes back (empty)
        // at its own deadline, so its lease loop sees its stop flag.
        let started = ContinuousClock.now
        let empty = feed.takeBatch(lane: 1, timeoutMs: 20).isEmpty
        let took = ContinuousClock.now - started
        #expect(empty)
        #expect(took < .milliseconds(500), "takeBatch waited \(took) behind another lane's seek")

        // Lane 1's own rewind waits for the turn, and stops when told.
        let revoked = ContinuousClock.now
        let waiting = Task.detached { feed.rewind(lane: 1, to: 0, stop: stop) { _ in } }
        try await Task.sleep(for: .milliseconds(100))
        stop.request()
        #expect(await waiting.value == .stopped)
        let waited = ContinuousClock.now - revoked
        #expect(waited < .milliseconds(100 + 500), "a waiting rewind took \(waited) to see its stop flag")

        // The rewinding holder ends within one seek's timeout after the stop.
        rewinderDone.wait()
        let ended = try #require(rewinderEnded.withLock { $0 })
        #expect(ended - revoked < .milliseconds(seekMs + 1000), "the rewind loop ended \(ended - revoked) after the stop")
        print("revoke during an unreachable rewind: takeBatch of the other lane \(took), waiting rewind stopped after \(waited), rewinding holder after \(ended - revoked)")
        feed.queue.destroy()
        consumer.close()
    }
}
