/// A Lua value copied out of (or into) a Lua state. Tables are copied deeply,
/// up to `LuaValue.maxDepth` levels.
public indirect enum LuaValue: Sendable, Hashable {
    case `nil`
    case boolean(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case table([LuaValue: LuaValue])
    /// A function, thread or userdata: only its type name is kept.
    case opaque(String)

    /// Deepest table nesting copied; deeper tables become `.opaque("table")`.
    public static let maxDepth = 32

    /// The Lua type name (`type(v)` in Lua).
    public var typeName: String {
        switch self {
        case .nil: "nil"
        case .boolean: "boolean"
        case .integer, .number: "number"
        case .string: "string"
        case .table: "table"
        case .opaque(let name): name
        }
    }

    /// The string, or a number converted as Lua would (`tostring`), else nil.
    public var stringValue: String? {
        switch self {
        case .string(let s): s
        case .integer(let i): String(i)
        case .number(let d): String(d)
        default: nil
        }
    }

    /// An integer, or a float with an exact integer value, else nil.
    public var intValue: Int64? {
        switch self {
        case .integer(let i): i
        case .number(let d) where d.rounded() == d && abs(d) < 9e15: Int64(d)
        default: nil
        }
    }

    /// Field `key` of a table, or `.nil`.
    public subscript(key: String) -> LuaValue {
        if case .table(let fields) = self { return fields[.string(key)] ?? .nil }
        return .nil
    }

    /// The values at 1, 2, … of a table (a Lua sequence), else nil.
    public var arrayValue: [LuaValue]? {
        guard case .table(let fields) = self else { return nil }
        var items: [LuaValue] = []
        var index: Int64 = 1
        while let item = fields[.integer(index)] {
            items.append(item)
            index += 1
        }
        return items.count == fields.count ? items : nil
    }
}

extension LuaValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(booleanLiteral value: Bool) { self = .boolean(value) }
}
