import CLua

/// The per-message fast path: `process(msg)` with the message table built
/// straight from librdkafka's buffers (no copies into Swift values), inside
/// the protected call, so a payload that does not fit under the memory cap
/// fails the call instead of aborting the process.
extension LuaState {
    /// Calls `process(msg)` and returns its two results `(ok, reason)`.
    /// Throws `LuaError` if the script raised or broke a budget.
    func callProcess(_ message: KafkaRawMessage, group: String, worker: String) throws -> (LuaValue, LuaValue) {
        let results = try withMessages([message], group: group, worker: worker) { messages in
            try call("process", messages: messages, asList: false, results: 2)
        }
        return (results[0], results[1])
    }

    /// Calls `process_batch(msgs)` with `messages` (one partition's, in
    /// order) and returns its first result.
    func callProcessBatch(_ messages: [KafkaRawMessage], group: String, worker: String) throws -> LuaValue {
        try withMessages(messages, group: group, worker: worker) { list in
            try call("process_batch", messages: list, asList: true, results: 1)[0]
        }
    }

    /// True if the script defines `process_batch` (asked once per state).
    var hasBatchHook: Bool {
        if let known = batchHook { return known }
        let found = hasFunction("process_batch")
        batchHook = found
        return found
    }

    /// Describes `messages` for C, pointing into librdkafka's buffers, for
    /// the duration of `body`.
    private func withMessages<T>(
        _ messages: [KafkaRawMessage], group: String, worker: String,
        _ body: (UnsafeBufferPointer<clua_message>) throws -> T
    ) throws -> T {
        if processNames?.group != group || processNames?.worker != worker {
            processNames = (group, worker, Array(group.utf8CString), Array(worker.utf8CString))
        }
        var headers: [clua_header] = []
        var headerRanges: [Range<Int>] = []
        headerRanges.reserveCapacity(messages.count)
        for message in messages {
            let start = headers.count
            message.forEachHeader { name, value in
                headers.append(clua_header(name: name, value: value.baseAddress, length: value.count))
            }
            headerRanges.append(start..<headers.count)
        }
        return try processNames!.groupBytes.withUnsafeBufferPointer { groupBytes in
            try processNames!.workerBytes.withUnsafeBufferPointer { workerBytes in
                try headers.withUnsafeBufferPointer { allHeaders in
                    let described = zip(messages, headerRanges).map { message, range in
                        let key = message.key
                        let payload = message.payload
                        return clua_message(
                            topic: message.topicName, partition: lua_Integer(message.partition), offset: message.offset,
                            timestamp: message.timestampMs, key: key?.baseAddress, key_length: key?.count ?? 0,
                            payload: payload.baseAddress, payload_length: payload.count,
                            headers: range.isEmpty ? nil : allHeaders.baseAddress! + range.lowerBound, header_count: range.count,
                            group: groupBytes.baseAddress, worker: workerBytes.baseAddress)
                    }
                    return try described.withUnsafeBufferPointer { try body($0) }
                }
            }
        }
    }
}
