import CLua

/// The per-message fast path: `process(msg)` with the message table built
/// straight from librdkafka's buffers, without intermediate Swift values.
extension LuaState {
    /// Calls `process(msg)` and returns its two results `(ok, reason)`.
    /// Throws `LuaError` if the script raised.
    func callProcess(_ message: KafkaRawMessage, group: String, worker: String) throws -> (LuaValue, LuaValue) {
        let L = rawState
        lua_getglobal(L, "process")
        lua_createtable(L, 0, 10)
        setField(L, "topic", message.topic)
        lua_pushinteger(L, lua_Integer(message.partition))
        lua_setfield(L, -2, "partition")
        lua_pushinteger(L, message.offset)
        lua_setfield(L, -2, "offset")
        if let key = message.key {
            pushBytes(L, key)
            lua_setfield(L, -2, "key")
        }
        pushBytes(L, message.payload)
        lua_setfield(L, -2, "payload")
        lua_pushinteger(L, message.timestampMs)
        lua_setfield(L, -2, "timestamp")
        lua_createtable(L, 0, 2)
        message.forEachHeader { name, value in
            pushBytes(L, value)
            lua_setfield(L, -2, name)
        }
        lua_setfield(L, -2, "headers")
        setField(L, "group", group)
        setField(L, "worker", worker)
        _ = bindings.takeEmitted()  // only this call's emits are reported
        let results = try callOnStack(arguments: 1, results: 2)
        return (results[0], results[1])
    }

    private func setField(_ L: OpaquePointer, _ name: String, _ value: String) {
        lua_pushstring(L, value)
        lua_setfield(L, -2, name)
    }

    private func pushBytes(_ L: OpaquePointer, _ bytes: UnsafeRawBufferPointer) {
        _ = lua_pushlstring(L, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
    }
}
