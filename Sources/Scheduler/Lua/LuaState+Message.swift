import CLua

/// The per-message fast path: `process(msg)` with the message table built
/// straight from librdkafka's buffers (no copies into Swift values), inside
/// the protected call, so a payload that does not fit under the memory cap
/// fails the call instead of aborting the process.
extension LuaState {
    /// Calls `process(msg)` and returns its two results `(ok, reason)`.
    /// Throws `LuaError` if the script raised or broke a budget.
    func callProcess(_ message: KafkaRawMessage, group: String, worker: String) throws -> (LuaValue, LuaValue) {
        if processNames?.group != group || processNames?.worker != worker {
            processNames = (group, worker, Array(group.utf8CString), Array(worker.utf8CString))
        }
        var headers: [clua_header] = []
        message.forEachHeader { name, value in
            headers.append(clua_header(name: name, value: value.baseAddress, length: value.count))
        }
        let key = message.key
        let payload = message.payload
        let results = try processNames!.groupBytes.withUnsafeBufferPointer { groupBytes in
            try processNames!.workerBytes.withUnsafeBufferPointer { workerBytes in
                try headers.withUnsafeBufferPointer { headerList in
                    var msg = clua_message(
                        topic: message.topicName, partition: lua_Integer(message.partition), offset: message.offset,
                        timestamp: message.timestampMs, key: key?.baseAddress,
                        key_length: key?.count ?? 0, payload: payload.baseAddress, payload_length: payload.count,
                        headers: headerList.baseAddress, header_count: headerList.count,
                        group: groupBytes.baseAddress, worker: workerBytes.baseAddress)
                    return try call("process", message: &msg, results: 2)
                }
            }
        }
        return (results[0], results[1])
    }
}
