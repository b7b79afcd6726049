import CLua
import Foundation

/// What the Lua side of the design costs by itself: a state set up as a
/// worker's (the scheduler's allocator, sandbox and budget hook) calls a
/// no-op `process(msg)` with the same C message description the library
/// builds, for messages held in memory: no Kafka, no threads, no Swift per
/// message. `process(msg)` is timed both one protected call per message
/// and driven from one call per batch (as the workers call it). It bounds what the scheduler's no-op path can reach: every
/// message costs librdkafka's work plus at least this.
struct LuaFloorBenchmark {
    var messages = 1_000_000
    var payloadBytes = 32
    var keys = 1000
    /// Messages per batch: as a worker takes them from a partition.
    var batchSize = 256

    struct Measured {
        /// Thread CPU per message: `process(msg)` one call per message.
        var processMicros: Double
        /// Thread CPU per message: `process(msg)` called for each message of
        /// a batch from one call into Lua (as the workers drive it).
        var eachMicros: Double
        /// Thread CPU per message: `process_batch(msgs)` over `batchSize` messages.
        var batchMicros: Double
        /// Thread CPU per call of a function with no argument (the call and budget alone).
        var emptyCallMicros: Double
        /// Thread CPU per message: `process_columns(batch)`, the batch as
        /// columns (lists of offsets, keys, payloads...) instead of a table
        /// per message.
        var columnsMicros: Double
    }

    func run() throws -> Measured {
        let lua = try BenchLuaState(memoryLimit: 256 << 20)
        defer { withExtendedLifetime(lua) {} }
        let state = lua.state
        clua_gc_generational(state)
        let topic = Array("bench".utf8CString), group = Array("bench-group".utf8CString), worker = Array("bench-group-0".utf8CString)
        try topic.withUnsafeBufferPointer { topic in
            try group.withUnsafeBufferPointer { group in
                try worker.withUnsafeBufferPointer { worker in
                    var open = clua_request()
                    open.mode = Int32(CLUA_RUN_OPEN)
                    open.worker = worker.baseAddress
                    open.group = group.baseAddress
                    guard clua_protected_run(state, &open) == LUA_OK else { throw BenchmarkError("sandbox did not open") }
                    let script = "function process(msg) end\nfunction process_batch(msgs) end\nfunction process_columns(batch) end\nfunction nothing() end\n"
                    guard luaL_loadstring(state, script) == LUA_OK, lua_pcallk(state, 0, 0, 0, 0, nil) == LUA_OK else {
                        throw BenchmarkError("floor script did not load")
                    }
                }
            }
        }
        let payloads = (0..<keys).map { Array(String(format: "%0\(payloadBytes)d", $0).utf8) }
        let keyBytes = (0..<keys).map { Array("k\($0)".utf8) }
        var described: [clua_message] = []
        described.reserveCapacity(batchSize)
        return try topic.withUnsafeBufferPointer { topic in
            try group.withUnsafeBufferPointer { group in
                try worker.withUnsafeBufferPointer { worker in
                    // Pointers into arrays that outlive the loops, like librdkafka's buffers.
                    let keyBuffers = keyBytes.map { bytes -> UnsafeMutableBufferPointer<UInt8> in
                        let buffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: bytes.count)
                        _ = buffer.initialize(from: bytes)
                        return buffer
                    }
                    let payloadBuffers = payloads.map { bytes -> UnsafeMutableBufferPointer<UInt8> in
                        let buffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: bytes.count)
                        _ = buffer.initialize(from: bytes)
                        return buffer
                    }
                    defer { (keyBuffers + payloadBuffers).forEach { $0.deallocate() } }
                    func message(_ index: Int) -> clua_message {
                        clua_message(
                            topic: topic.baseAddress, partition: 3, offset: lua_Integer(index), timestamp: 1_700_000_000_000,
                            key: UnsafeRawPointer(keyBuffers[index % keys].baseAddress), key_length: keyBuffers[index % keys].count,
                            payload: UnsafeRawPointer(payloadBuffers[index % keys].baseAddress), payload_length: payloadBuffers[index % keys].count,
                            headers: nil, header_count: 0, group: group.baseAddress, worker: worker.baseAddress, names_version: 1)
                    }
                    func call(_ function: StaticString, messages: UnsafeBufferPointer<clua_message>?, list: Bool, columns: Bool = false, each: Bool = false) throws {
                        var request = clua_request()
                        request.mode = Int32(CLUA_RUN_CALL)
                        request.function = UnsafeRawPointer(function.utf8Start).assumingMemoryBound(to: CChar.self)
                        request.results = 2
                        if let messages {
                            request.message = messages.baseAddress
                            request.message_count = messages.count
                            request.message_list = list ? 1 : 0
                            request.message_columns = columns ? 1 : 0
                            request.message_each = each ? 1 : 0
                            request.each_instructions = 1 << 40
                            request.each_milliseconds = 60_000
                            request.arguments = 1
                        }
                        clua_begin_call(state, 1 << 40, 60_000)
                        let status = clua_protected_run(state, &request)
                        clua_end_call(state)
                        lua_settop(state, 0)
                        guard status == LUA_OK, !each || request.done == messages?.count else { throw BenchmarkError("floor call failed") }
                    }
                    /// `body` over the messages in batches of `batchSize`.
                    func inBatches(_ body: (UnsafeBufferPointer<clua_message>) throws -> Void) rethrows {
                        var index = 0
                        while index < messages {
                            described.removeAll(keepingCapacity: true)
                            for offset in index..<min(messages, index + batchSize) { described.append(message(offset)) }
                            try described.withUnsafeBufferPointer { try body($0) }
                            index += batchSize
                        }
                    }
                    let calls = min(messages, 200_000)
                    let empty = try Self.threadCPU { for _ in 0..<calls { try call("nothing", messages: nil, list: false) } }
                    let single = try Self.threadCPU {
                        for index in 0..<messages {
                            var one = message(index)
                            try withUnsafePointer(to: &one) { try call("process", messages: UnsafeBufferPointer(start: $0, count: 1), list: false) }
                        }
                    }
                    let driven = try Self.threadCPU { try inBatches { try call("process", messages: $0, list: false, each: true) } }
                    let batched = try Self.threadCPU { try inBatches { try call("process_batch", messages: $0, list: true) } }
                    // The same batches through the shim's own columns builder (process_columns).
                    let columns = try Self.threadCPU { try inBatches { try call("process_columns", messages: $0, list: true, columns: true) } }
                    return Measured(processMicros: single * 1e6 / Double(messages), eachMicros: driven * 1e6 / Double(messages),
                                    batchMicros: batched * 1e6 / Double(messages),
                                    emptyCallMicros: empty * 1e6 / Double(calls), columnsMicros: columns * 1e6 / Double(messages))
                }
            }
        }
    }

    /// CPU seconds this thread spent in `body`.
    static func threadCPU(_ body: () throws -> Void) rethrows -> Double {
        func now() -> Double {
            var spec = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
            return Double(spec.tv_sec) + Double(spec.tv_nsec) * 1e-9
        }
        let started = now()
        try body()
        return now() - started
    }
}
