import CLua

/// The per-message fast path: `process(msg)` with the message table built
/// straight from librdkafka's buffers (no copies into Swift values), inside
/// the protected call, so a payload that does not fit under the memory cap
/// fails the call instead of aborting the process.
extension LuaState {
    /// Calls `process(msg)` and returns its two results `(ok, reason)`.
    /// Throws `LuaError` if the script raised or broke a budget.
    func callProcess(_ message: KafkaRawMessage, group: String, worker: String) throws -> (LuaValue, LuaValue) {
        var msg = LuaPushList(ops: 40, bytes: 128)
        msg.appendTable(records: 10)
        msg.field("topic", .string(message.topic))
        msg.field("partition", .integer(Int64(message.partition)))
        msg.field("offset", .integer(message.offset))
        if let key = message.key { msg.field("key", bytes: key) }
        msg.field("payload", bytes: message.payload)
        msg.field("timestamp", .integer(message.timestampMs))
        msg.beginTable("headers", records: 2)
        message.forEachHeader { name, value in msg.field(name, bytes: value) }
        msg.endTable()
        msg.field("group", .string(group))
        msg.field("worker", .string(worker))
        let results = try call("process", msg, results: 2)
        return (results[0], results[1])
    }
}
