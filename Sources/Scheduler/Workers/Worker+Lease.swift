import Foundation
import Logging

extension Worker {
    /// Holds `feed` under `lease`: waits for the predecessor to let go, then
    /// processes messages. At each slice boundary (`slice_ms` elapsed, or the
    /// script yielded) it reports to the coordinator and goes on in overtime
    /// until the coordinator renews the lease, a successor takes over, or it
    /// is asked to stop. The lease ends at once when the partition runs dry.
    /// The message in flight always finishes; messages taken but not
    /// processed go back to the feed for the next holder.
    func runLease(_ lease: Lease, feed: LaneFeed, onReport: @escaping @Sendable (SliceReport) -> Void) {
        let handoffFrom = takeOver(lease)
        refreshScript()
        var run = LeaseRun(worker: self, lease: lease, feed: feed, onReport: onReport, handoffFrom: handoffFrom)
        script?.bindings.yieldRequested = false
        let reason = run.work()
        run.end(reason)
    }

    /// Waits for the predecessor, if any, to let go. Returns when it did if
    /// messages were waiting then: the handoff gap starts there.
    private func takeOver(_ lease: Lease) -> ContinuousClock.Instant? {
        guard let predecessor = lease.predecessor else { return nil }
        predecessor.awaitRelease()
        guard let released = predecessor.released, released.messagesWaiting else { return nil }
        return released.at
    }

    /// Commits the feed's position asynchronously if it moved (the seed's
    /// async commit; the final commit on revoke and shutdown is synchronous):
    /// the first message not complete, so never past an emit in flight.
    /// With lanes, the position is the partition's across all its lanes.
    func commitProgress(_ lane: LaneFeed) {
        let partition = lane.partition
        // Held while the group rebalances (CommitGate): nothing is sent.
        guard environment.commits.isOpen else { return }
        do {
            try lane.feed.commitIfMoved { next in
                try environment.consumer.commit([PartitionOffset(topic: partition.topic, partition: partition.partition, offset: next)], async: true)
            }
        } catch {
            environment.logger.warning("commit of \(partition) failed: \(error)", metadata: logMetadata)
        }
    }
}

/// Running figures of one slice.
struct SliceTally {
    var messages = 0
    var errors = 0
    var deadLettered = 0
    var busy = Duration.zero
    var luaCalls = LuaCallTally()
}
