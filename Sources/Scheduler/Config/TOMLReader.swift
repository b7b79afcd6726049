import TOMLKit

/// Typed access to TOML values with errors that name the file, key and line.
///
/// TOMLKit reports lines only for syntax errors, so for type and value errors
/// the line is found by scanning the source for the key under its table header.
struct TOMLReader {
    let file: String
    let lines: [Substring]

    init(file: String, source: String) {
        self.file = file
        self.lines = source.split(separator: "\n", omittingEmptySubsequences: false)
    }

    /// 1-based line of `key` inside `table` (nil: top level; `groups#N`: the
    /// N-th `[[groups]]` entry; dotted names for nested tables).
    func line(of key: String, table: String?) -> Int? {
        var current: String? = nil
        var groupIndex = -1
        for (number, raw) in lines.enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[[") {
                let name = line.dropFirst(2).prefix { $0 != "]" }.trimmingCharacters(in: .whitespaces)
                if name == "groups" { groupIndex += 1; current = "groups#\(groupIndex)" } else { current = name }
                if current == table && key.isEmpty { return number + 1 }
                continue
            }
            if line.hasPrefix("[") {
                current = line.dropFirst().prefix { $0 != "]" }.trimmingCharacters(in: .whitespaces)
                if current == table && key.isEmpty { return number + 1 }
                continue
            }
            guard current == table, let eq = line.firstIndex(of: "=") else { continue }
            let name = line[..<eq].trimmingCharacters(in: .whitespaces).trimmingCharacters(in: ["\"", "'"])
            if name == key { return number + 1 }
        }
        return nil
    }

    func error(_ path: String, table: String?, _ message: String) -> ConfigError {
        let key = path.split(separator: ".").last.map(String.init) ?? path
        return ConfigError(file: file, key: path, line: line(of: key.components(separatedBy: "[").first ?? key, table: table), message: message)
    }

    func unknownKey(_ key: String, table: String?, allowed: [String], path: String? = nil) -> ConfigError {
        let shownTable = table.map { $0.hasPrefix("groups#") ? "[[groups]]" : "[\($0)]" } ?? "the top level"
        let name = path ?? (table.map { t in t.hasPrefix("groups#") ? key : "\(t).\(key)" } ?? key)
        return ConfigError(file: file, key: name, line: line(of: key, table: table),
                           message: "unknown key in \(shownTable); known keys: \(allowed.joined(separator: ", "))")
    }

    func wrongType(_ path: String, expected: String, got value: TOMLValueConvertible, table: String?) -> ConfigError {
        error(path, table: table, "expected \(expected), got \(value.type)")
    }

    func table(_ value: TOMLValueConvertible, _ path: String) throws -> TOMLTable {
        guard let table = value.table else {
            throw wrongType(path, expected: "a table", got: value, table: nil)
        }
        return table
    }

    func int(_ value: TOMLValueConvertible, _ path: String, table: String?) throws -> Int {
        guard let int = value.int else { throw wrongType(path, expected: "integer", got: value, table: table) }
        return int
    }

    func string(_ value: TOMLValueConvertible, _ path: String, table: String?) throws -> String {
        guard let string = value.string else { throw wrongType(path, expected: "string", got: value, table: table) }
        return string
    }

    func bool(_ value: TOMLValueConvertible, _ path: String, table: String?) throws -> Bool {
        guard let bool = value.bool else { throw wrongType(path, expected: "boolean", got: value, table: table) }
        return bool
    }

    /// A string, integer, float or boolean, as text (librdkafka properties are strings).
    func scalarText(_ value: TOMLValueConvertible, _ path: String, table: String?) throws -> String {
        if let s = value.string { return s }
        if let i = value.int { return String(i) }
        if let b = value.bool { return String(b) }
        if let d = value.double { return String(d) }
        throw wrongType(path, expected: "string, number or boolean", got: value, table: table)
    }

    func stringList(_ value: TOMLValueConvertible, _ path: String, table: String?) throws -> [String] {
        guard let array = value.array else {
            throw wrongType(path, expected: "array of strings", got: value, table: table)
        }
        return try array.enumerated().map { index, element in
            guard let string = element.string else {
                throw error(path, table: table, "element \(index) must be a string, got \(element.type)")
            }
            return string
        }
    }
}
