import CLua

/// The per-message fast path: `process(msg)` with the message table built
/// straight from librdkafka's buffers (no copies into Swift values), inside
/// the protected call, so a payload that does not fit under the memory cap
/// fails the call instead of aborting the process.
extension LuaState {
    /// Calls `process(msg)` and returns its two results `(ok, reason)`.
    /// Throws `LuaError` if the script raised or broke a budget.
    func callProcess(_ message: KafkaRawMessage, group: String, worker: String) throws -> (LuaValue, LuaValue) {
        // Called for every message: one description on the stack, and a
        // header array only when the message has headers.
        refreshNames(group: group, worker: worker)
        var headers: [clua_header] = []
        message.forEachHeader { name, value in
            headers.append(clua_header(name: name, value: value.baseAddress, length: value.count))
        }
        return try processNames!.groupBytes.withUnsafeBufferPointer { groupBytes in
            try processNames!.workerBytes.withUnsafeBufferPointer { workerBytes in
                try headers.withUnsafeBufferPointer { headerList in
                    var described = describe(message, headers: headerList.baseAddress, count: headerList.count,
                                             group: groupBytes.baseAddress, worker: workerBytes.baseAddress)
                    return try withUnsafePointer(to: &described) {
                        try call("process", messages: UnsafeBufferPointer(start: $0, count: 1), asList: false, results: 2) { top in
                            (value(at: top + 1), value(at: top + 2))
                        }
                    }
                }
            }
        }
    }

    /// Calls `process_batch(msgs)` with `messages` (one partition's, in
    /// order) and returns its first result.
    func callProcessBatch(_ messages: [KafkaRawMessage], group: String, worker: String) throws -> LuaValue {
        try withMessages(messages, group: group, worker: worker) { list in
            try call("process_batch", messages: list, asList: true, results: 1)[0]
        }
    }

    /// Calls `process_columns(batch)` with `messages` (one partition's, in
    /// order) as one table of columns, and returns its first result.
    /// `batch.headers` is built only if the script reads it (see
    /// `readHeaders`), so a batch whose headers are not used costs no
    /// header lookups.
    func callProcessColumns(_ messages: [KafkaRawMessage], group: String, worker: String) throws -> LuaValue {
        try withMessages(messages, group: group, worker: worker, headers: false) { list in
            try messages.withUnsafeBufferPointer { raw in
                try call("process_columns", messages: list, asList: true, asColumns: true,
                         headers: (Self.readHeaders, UnsafeRawPointer(raw.baseAddress)), results: 1) { top in
                    value(at: top + 1)
                }
            }
        }
    }

    /// The shim's `read_headers` for `process_columns`: message `index`'s
    /// headers (pointing into librdkafka's buffers) for `batch.headers`,
    /// read while the call runs. Runs inside the Lua call: it calls no Lua
    /// and cannot fail.
    static let readHeaders: @convention(c) (UnsafeRawPointer?, Int, UnsafeMutablePointer<clua_header>?, Int) -> Int = {
        context, index, out, capacity in
        guard let context else { return 0 }
        let message = context.assumingMemoryBound(to: KafkaRawMessage.self)[index]
        var count = 0
        message.forEachHeader { name, value in
            if count < capacity, let out {
                out[count] = clua_header(name: name, value: value.baseAddress, length: value.count)
            }
            count += 1
        }
        return count
    }

    /// True if the script defines `process_columns` (asked once per state).
    var hasColumnsHook: Bool {
        if let known = columnsHook { return known }
        let found = hasFunction("process_columns")
        columnsHook = found
        return found
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
    /// Without `headers`, the descriptions carry none (read later, if at all).
    private func withMessages<T>(
        _ messages: [KafkaRawMessage], group: String, worker: String, headers wanted: Bool = true,
        _ body: (UnsafeBufferPointer<clua_message>) throws -> T
    ) throws -> T {
        refreshNames(group: group, worker: worker)
        var headers: [clua_header] = []
        var headerRanges: [Range<Int>] = []
        if wanted { headerRanges.reserveCapacity(messages.count) }
        for message in messages where wanted {
            let start = headers.count
            message.forEachHeader { name, value in
                headers.append(clua_header(name: name, value: value.baseAddress, length: value.count))
            }
            headerRanges.append(start..<headers.count)
        }
        return try processNames!.groupBytes.withUnsafeBufferPointer { groupBytes in
            try processNames!.workerBytes.withUnsafeBufferPointer { workerBytes in
                try headers.withUnsafeBufferPointer { allHeaders in
                    let described = messages.indices.map { index in
                        let range = wanted ? headerRanges[index] : 0..<0
                        return describe(messages[index], headers: range.isEmpty ? nil : allHeaders.baseAddress! + range.lowerBound, count: range.count,
                                        group: groupBytes.baseAddress, worker: workerBytes.baseAddress)
                    }
                    return try described.withUnsafeBufferPointer { try body($0) }
                }
            }
        }
    }

    /// `msg.group` and `msg.worker` as C strings, remade only when they change.
    private func refreshNames(group: String, worker: String) {
        if processNames?.group != group || processNames?.worker != worker {
            processNames = (group, worker, Array(group.utf8CString), Array(worker.utf8CString), (processNames?.version ?? 0) + 1)
        }
    }

    /// One message for C, pointing into librdkafka's buffers.
    private func describe(
        _ message: KafkaRawMessage, headers: UnsafePointer<clua_header>?, count: Int,
        group: UnsafePointer<CChar>?, worker: UnsafePointer<CChar>?
    ) -> clua_message {
        let key = message.key
        let payload = message.payload
        return clua_message(
            topic: message.topicName, partition: lua_Integer(message.partition), offset: message.offset,
            timestamp: message.timestampMs, key: key?.baseAddress, key_length: key?.count ?? 0,
            payload: payload.baseAddress, payload_length: payload.count,
            headers: headers, header_count: count, group: group, worker: worker,
            names_version: lua_Integer(processNames?.version ?? 0))
    }
}
