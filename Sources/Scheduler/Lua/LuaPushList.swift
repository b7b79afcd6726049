import CLua

/// Values to push into a Lua state, recorded as `clua_op` steps and pushed by
/// C code inside a protected call: allocating in Lua can raise, and Lua's
/// error longjmp must not cross a Swift frame.
struct LuaPushList {
    private(set) var ops: [clua_op] = []
    /// Bytes of the strings copied from Swift (`bytes == nil` ops point in here).
    private(set) var arena: [UInt8] = []
    /// Top-level values the ops leave on the stack.
    private(set) var count: Int32 = 0

    /// An empty list with room for about `ops` steps and `bytes` string bytes.
    init(ops: Int = 0, bytes: Int = 0) {
        self.ops.reserveCapacity(ops)
        arena.reserveCapacity(bytes)
    }

    /// Adds `value` as one more top-level value.
    mutating func append(_ value: LuaValue) {
        encode(value)
        count += 1
    }

    /// Starts a top-level table; fill it with `field` calls.
    mutating func appendTable(records: Int) {
        ops.append(op(CLUA_OP_TABLE, integer: Int64(records)))
        count += 1
    }

    /// Sets `table[name] = value` on the table being built.
    mutating func field(_ name: String, _ value: LuaValue) {
        string(name)
        encode(value)
        ops.append(op(CLUA_OP_SET))
    }

    /// Sets `table[name] = bytes`; the bytes are not copied and must stay
    /// valid until the list has been pushed.
    mutating func field(_ name: String, bytes: UnsafeRawBufferPointer) {
        string(name)
        var step = op(CLUA_OP_STR)
        step.bytes = bytes.baseAddress?.assumingMemoryBound(to: CChar.self)
        step.length = bytes.count
        // An empty buffer may have no address: push it from the arena instead.
        if step.bytes == nil { step.integer = 0; step.length = 0 }
        ops.append(step)
        ops.append(op(CLUA_OP_SET))
    }

    /// `field(_:bytes:)` with a C string name (librdkafka's header names).
    mutating func field(_ name: UnsafePointer<CChar>, bytes: UnsafeRawBufferPointer) {
        field(String(cString: name), bytes: bytes)
    }

    /// Opens a nested table as the value of `table[name]`; close it with `endTable()`.
    mutating func beginTable(_ name: String, records: Int) {
        string(name)
        ops.append(op(CLUA_OP_TABLE, integer: Int64(records)))
    }

    /// Closes the table opened by `beginTable`.
    mutating func endTable() {
        ops.append(op(CLUA_OP_SET))
    }

    private mutating func encode(_ value: LuaValue) {
        switch value {
        case .nil, .opaque: ops.append(op(CLUA_OP_NIL))
        case .boolean(let b): ops.append(op(CLUA_OP_BOOL, flag: b ? 1 : 0))
        case .integer(let i): ops.append(op(CLUA_OP_INT, integer: i))
        case .number(let d):
            var step = op(CLUA_OP_NUM)
            step.number = d
            ops.append(step)
        case .string(let s): string(s)
        case .table(let fields):
            ops.append(op(CLUA_OP_TABLE, integer: Int64(fields.count)))
            for (key, item) in fields {
                encode(key)
                encode(item)
                ops.append(op(CLUA_OP_SET))
            }
        }
    }

    private mutating func string(_ text: String) {
        let offset = arena.count
        arena.append(contentsOf: text.utf8)
        ops.append(clua_op(kind: Int32(CLUA_OP_STR), flag: 0, integer: Int64(offset), number: 0, bytes: nil, length: arena.count - offset))
    }

    private func op(_ kind: Int, flag: Int32 = 0, integer: Int64 = 0) -> clua_op {
        clua_op(kind: Int32(kind), flag: flag, integer: integer, number: 0, bytes: nil, length: 0)
    }
}
