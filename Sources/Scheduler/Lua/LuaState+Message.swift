import CLua

/// The per-message paths: `process(msg)` and `process_batch(msgs)` with
/// each `msg` a lazy table (clua_push_proxy) reading librdkafka's buffers
/// (no copies into Swift values) when a field is first read, inside the
/// protected call, so a payload that does not fit under the memory cap
/// fails the call instead of aborting the process.
extension LuaState {
    /// Calls `process(msg)` and returns its two results `(ok, reason)`.
    /// Throws `LuaError` if the script raised or broke a budget.
    func callProcess(_ message: KafkaMessageView, group: String, worker: String) throws -> (LuaValue, LuaValue) {
        try callProcessEach([message][...], group: group, worker: worker).answer.get()
    }

    /// Calls `process(msg)` for each of `messages` (one partition's, in
    /// order) in one protected call, each call under its own budget, until
    /// one fails or `after(index, nanoseconds)`, run after each call that
    /// succeeded (inside the Lua call: it must not use this state), returns
    /// false. See `EachRun` for what the run reports.
    func callProcessEach(_ messages: ArraySlice<KafkaMessageView>, group: String, worker: String, after: (Int, Int64) -> Bool) -> EachRun {
        withMessages(messages, group: group, worker: worker) { list in
            messages.withUnsafeBufferPointer { raw in
                callEach("process", messages: list, headers: (Self.readHeaders, UnsafeRawPointer(raw.baseAddress)), after: after)
            }
        }
    }

    /// `callProcessEach` without `after`: until a call fails.
    func callProcessEach(_ messages: ArraySlice<KafkaMessageView>, group: String, worker: String) -> EachRun {
        withMessages(messages, group: group, worker: worker) { list in
            messages.withUnsafeBufferPointer { raw in
                callEach("process", messages: list, headers: (Self.readHeaders, UnsafeRawPointer(raw.baseAddress)))
            }
        }
    }

    /// Calls `process_batch(msgs)` with `messages` (one partition's, in
    /// order) and returns its first result.
    func callProcessBatch(_ messages: ArraySlice<KafkaMessageView>, group: String, worker: String) throws -> LuaValue {
        try withMessages(messages, group: group, worker: worker) { list in
            try messages.withUnsafeBufferPointer { raw in
                try call("process_batch", messages: list, asList: true,
                         headers: (Self.readHeaders, UnsafeRawPointer(raw.baseAddress)), results: 1) { top in
                    value(at: top + 1)
                }
            }
        }
    }

    /// Calls `process_columns(batch)` with `messages` (one partition's, in
    /// order) as one table of columns, and returns its first result.
    /// `batch.headers` is built only if the script reads it (see
    /// `readHeaders`), so a batch whose headers are not used costs no
    /// header lookups.
    func callProcessColumns(_ messages: ArraySlice<KafkaMessageView>, group: String, worker: String) throws -> LuaValue {
        try withMessages(messages, group: group, worker: worker) { list in
            try messages.withUnsafeBufferPointer { raw in
                try call("process_columns", messages: list, asList: true, asColumns: true,
                         headers: (Self.readHeaders, UnsafeRawPointer(raw.baseAddress)), results: 1) { top in
                    value(at: top + 1)
                }
            }
        }
    }

    /// The shim's `read_headers`: message `index`'s headers (pointing into
    /// librdkafka's buffers) for `batch.headers` or `msg.headers`, read
    /// while the call runs. Runs inside the Lua call: it calls no Lua
    /// and cannot fail.
    static let readHeaders: @convention(c) (UnsafeRawPointer?, Int, UnsafeMutablePointer<clua_header>?, Int) -> Int = {
        context, index, out, capacity in
        guard let context else { return 0 }
        let message = context.assumingMemoryBound(to: KafkaMessageView.self)[index]
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
    /// the duration of `body`. The descriptions carry no headers: the
    /// script's first read of them asks librdkafka (`readHeaders`).
    private func withMessages<T>(
        _ messages: ArraySlice<KafkaMessageView>, group: String, worker: String,
        _ body: (UnsafeBufferPointer<clua_message>) throws -> T
    ) rethrows -> T {
        refreshNames(group: group, worker: worker)
        return try processNames!.groupBytes.withUnsafeBufferPointer { groupBytes in
            try processNames!.workerBytes.withUnsafeBufferPointer { workerBytes in
                let described = messages.map { message in
                    describe(message, headers: nil, count: 0, group: groupBytes.baseAddress, worker: workerBytes.baseAddress)
                }
                return try described.withUnsafeBufferPointer { try body($0) }
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
        _ message: KafkaMessageView, headers: UnsafePointer<clua_header>?, count: Int,
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
