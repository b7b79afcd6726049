import Foundation
import Logging

/// How a `process_batch(msgs)` call went.
enum BatchOutcome {
    /// Every message of the batch is done; its emits are in flight.
    case done
    /// The call failed or reported a failed message: its emits are dropped
    /// and the batch is processed again message by message with `process()`.
    case fallback
    /// The lease must end (while waiting for room for the emits).
    case stopped(SliceEndReason)
}

extension Worker {
    /// Whether the worker may hand `batch` to `process_columns` or
    /// `process_batch`: the script defines one, and no failure is on record
    /// for this partition (a message being retried or rewound goes through
    /// `process()`, one by one).
    func mayProcessAsBatch(_ batch: ArraySlice<KafkaMessageView>, feed: LaneFeed) -> Bool {
        // process() is there too: loading process.lua requires it.
        guard batch.count > 1, let script, script.hasColumnsHook || script.hasBatchHook else { return false }
        guard !feed.emits.hasFailure, feed.emits.failedRounds(at: batch[batch.startIndex].offset) == 0 else { return false }
        return batch.allSatisfy { $0.error == nil }
    }

    /// One `process_columns(batch)` or `process_batch(msgs)` call over
    /// `batch` (one partition's messages, in order). It succeeds when it returns nothing or true, or a table
    /// whose every entry `[i]` is nil or true. Its emits are attributed to the
    /// batch's first offset, so no offset of the batch is committed before
    /// all of them are acknowledged, and a failed emit reads the whole batch
    /// again.
    func handleBatch(
        _ batch: ArraySlice<KafkaMessageView>, lease: Lease, feed: LaneFeed, calls: inout LuaCallTally,
        began: ContinuousClock.Instant, ended: inout ContinuousClock.Instant
    ) -> BatchOutcome {
        guard let script else { return .fallback }
        // process_columns takes precedence: it is the cheaper shape.
        let columns = script.hasColumnsHook
        let hook = columns ? "process_columns" : "process_batch"
        let answer: LuaValue
        do {
            answer = columns
                ? try script.callProcessColumns(batch, group: environment.group.name, worker: id)
                : try script.callProcessBatch(batch, group: environment.group.name, worker: id)
            ended = .now
            calls.add(ended - began)
        } catch {
            ended = .now
            calls.add(ended - began)
            environment.catalog.countError(script: ScriptCatalog.process, hook: hook)
            environment.logger.warning("\(hook)() failed, the batch is processed one message at a time: \(error)", metadata: logMetadata)
            _ = script.bindings.takeEmitted()
            return .fallback
        }
        let emitted = script.bindings.takeEmitted()
        guard Self.batchSucceeded(answer, count: batch.count) else {
            environment.logger.debug("\(hook)() reported a failure; the batch is processed one message at a time", metadata: logMetadata)
            return .fallback
        }
        switch emit(emitted, offset: batch[batch.startIndex].offset, lease: lease, feed: feed) {
        case .sent: return .done
        case .invalid(let reason):
            environment.logger.warning("\(hook)(): \(reason); the batch is processed one message at a time", metadata: logMetadata)
            return .fallback
        case .stopped(let reason): return .stopped(reason)
        }
    }

    /// Nothing, true, or a table of per-message results that are all nil or true.
    static func batchSucceeded(_ answer: LuaValue, count: Int) -> Bool {
        switch answer {
        case .nil, .boolean(true): return true
        case .table(let results):
            return (1...count).allSatisfy { index in
                switch results[.integer(Int64(index))] ?? .nil {
                case .nil, .boolean(true): return true
                default: return false
                }
            }
        default: return false
        }
    }
}
