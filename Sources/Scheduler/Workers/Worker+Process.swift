import Foundation
import Logging

/// How handling one message ended.
enum MessageOutcome {
    /// Processed (or dead-lettered after its last attempt); its offset may be committed.
    case done(failures: Int, deadLettered: Bool)
    /// Given up unfinished because the lease must end (revoke, shutdown); the
    /// message stays unprocessed for the partition's next holder.
    case abandoned(SliceEndReason)
}

extension Worker {
    /// Calls `process(msg)` until it succeeds, retrying with backoff while the
    /// partition stays held (so order is kept); after `max_attempts` the
    /// message goes to the dead-letter topic. The tasks it emitted are handed
    /// to the producer and the worker goes on: the message is complete (and
    /// its offset committable) once they are acknowledged (`EmitTracker`).
    /// Rounds whose emits failed count as failed attempts.
    /// `began`: when the worker took the message (the first call's start);
    /// `ended` is set to when the last call returned (clock reads are kept
    /// to two per message on this path). `failedFirst`: the reason of a
    /// first attempt already made and failed (`drive`).
    func handle(
        _ message: KafkaMessageView, lease: Lease, feed: LaneFeed, calls: inout LuaCallTally,
        began: ContinuousClock.Instant, ended: inout ContinuousClock.Instant, failedFirst: String? = nil
    ) -> MessageOutcome {
        let group = environment.group
        var failures = feed.emits.failedRounds(at: message.offset)
        var failure = failures > 0 ? feed.emits.lastError(at: message.offset) ?? "emits failed" : ""
        var given = failedFirst
        while failures < group.maxAttempts {
            if let reason = given {
                given = nil
                failure = reason
            } else {
                switch attempt(message, calls: &calls, started: failures == 0 ? began : .now, ended: &ended) {
                case .success(let emitted):
                    switch emit(emitted, offset: message.offset, lease: lease, feed: feed) {
                    case .sent: return .done(failures: failures, deadLettered: false)
                    case .invalid(let reason): failure = reason
                    case .stopped(let stop): return .abandoned(stop)
                    }
                case .failure(let reason): failure = reason.description
                }
            }
            failures += 1
            var metadata = logMetadata
            metadata[LogKey.topic] = "\(lease.partition.topic)"
            metadata[LogKey.partition] = "\(lease.partition.partition)"
            metadata[LogKey.offset] = "\(message.offset)"
            environment.logger.warning("process() failed (attempt \(failures) of \(group.maxAttempts)): \(failure)", metadata: metadata)
            if failures >= group.maxAttempts { break }
            let backoff = min(group.retryBackoffMs << min(failures - 1, 16), 30_000)
            if let stop = pause(milliseconds: backoff, lease: lease) { return .abandoned(stop) }
        }
        if let stop = deadLetter(message, error: failure, attempts: failures, lease: lease) {
            return .abandoned(stop)
        }
        feed.emits.forget(message.offset)
        return .done(failures: failures, deadLettered: true)
    }

    /// One call of `process(msg)`; on success, what it emitted.
    private func attempt(
        _ message: KafkaMessageView, calls: inout LuaCallTally, started: ContinuousClock.Instant, ended: inout ContinuousClock.Instant
    ) -> Result<[OutgoingMessage], ProcessFailure> {
        guard let script else { return .failure(ProcessFailure("process.lua is not loaded")) }
        let answer: (LuaValue, LuaValue)
        do {
            answer = try script.callProcess(message, group: environment.group.name, worker: id)
            ended = .now
            calls.add(ended - started)
        } catch {
            ended = .now
            calls.add(ended - started)
            environment.catalog.countError(script: ScriptCatalog.process, hook: "process")
            if let lua = error as? LuaError, let traceback = lua.traceback {
                environment.logger.debug("process() traceback:\n\(traceback)", metadata: logMetadata)
            }
            return .failure(ProcessFailure("\(error)"))
        }
        let emitted = script.bindings.takeEmitted()
        if let failure = Self.processFailure(answer) { return .failure(failure) }
        return .success(emitted)
    }

    /// What `process()`'s results `answer` say: nil when it succeeded.
    static func processFailure(_ answer: (LuaValue, LuaValue)) -> ProcessFailure? {
        switch answer.0 {
        case .nil, .boolean(true): nil
        case .boolean(false): ProcessFailure(answer.1.stringValue ?? "process() returned false")
        case let other: ProcessFailure("process() must return nothing, true, or false and a reason; got \(other.typeName)")
        }
    }

    /// Publishes `messages` in order and waits for every acknowledgement.
    func publishAndWait(_ messages: [OutgoingMessage], checkSize: Bool = true) -> Result<Void, ProcessFailure> {
        guard !messages.isEmpty else { return .success(()) }
        var deliveries: [PendingDelivery] = []
        for message in messages {
            switch environment.publisher.enqueue(message, checkSize: checkSize) {
            case .success(let delivery): deliveries.append(delivery)
            case .failure(let error): return .failure(ProcessFailure("emit to '\(message.topic)' failed: \(error)"))
            }
        }
        for (message, delivery) in zip(messages, deliveries) {
            if case .failure(let error) = delivery.wait() {
                publishedCounter(MetricName.publishErrors, topic: message.topic).increment()
                return .failure(ProcessFailure("emit to '\(message.topic)' was not acknowledged: \(error)"))
            }
            publishedCounter(MetricName.published, topic: message.topic).increment()
        }
        return .success(())
    }

    /// Sends a message that failed its last attempt to the dead-letter topic,
    /// retrying the send until it is acknowledged (nothing is dropped) or the
    /// lease must end (then the message stays unprocessed: returns the reason).
    private func deadLetter(_ message: KafkaMessageView, error: String, attempts: Int, lease: Lease) -> SliceEndReason? {
        let letter = DeadLetter.message(for: message, error: error, attempts: attempts, group: environment.group, worker: id)
        var tries = 0
        while true {
            switch publishAndWait([letter], checkSize: false) {
            case .success:
                environment.logger.error("message dead-lettered to \(letter.topic) after \(attempts) attempts: \(error)", metadata: logMetadata.merging([
                    LogKey.topic: "\(lease.partition.topic)", LogKey.partition: "\(lease.partition.partition)", LogKey.offset: "\(message.offset)",
                ]) { $1 })
                return nil
            case .failure(let failure):
                tries += 1
                environment.logger.error("dead-letter send failed (try \(tries)): \(failure)", metadata: logMetadata)
                let wait = min(max(100, environment.group.retryBackoffMs) << min(tries, 7), 10_000)
                if let stop = pause(milliseconds: wait, lease: lease) {
                    return stop
                }
            }
        }
    }

    /// Waits `milliseconds`; returns early with the reason if the lease is
    /// asked to stop (woken by the request, not polled).
    func pause(milliseconds: Int, lease: Lease) -> SliceEndReason? {
        _ = lease.control.stop.wait(until: .now + .milliseconds(milliseconds))
        return lease.control.stopReason
    }
}

/// Why `process()` failed for one message.
struct ProcessFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
