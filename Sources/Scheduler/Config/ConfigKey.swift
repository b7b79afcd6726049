import TOMLKit

/// Where a key sits in the file: the table its line is searched under
/// (`kafka`, `groups#1`) and the prefix of its dotted path in errors
/// (`kafka`, `groups[1]`).
struct KeyPlace {
    let reader: TOMLReader
    let table: String
    let prefix: String

    func path(_ name: String) -> String { "\(prefix).\(name)" }

    func error(_ name: String, _ message: String) -> ConfigError {
        reader.error(path(name), table: table, message)
    }
}

/// A section of the file whose keys are declared once, as `keys`.
/// The defaults are the section's property initialisers: `init()` gives them.
protocol ConfigSection: Sendable {
    init()
    /// Every key of the section, in the order the shipped `config.toml` lists them.
    static var keys: [ConfigKey<Self>] { get }
}

extension ConfigSection {
    /// Reads `table` into a section holding the defaults for keys absent from it.
    static func read(_ table: TOMLTable, _ place: KeyPlace) throws -> Self {
        var section = Self()
        for (name, value) in table {
            guard let key = keys.first(where: { $0.name == name }) else {
                throw place.reader.unknownKey(name, table: place.table, allowed: keys.map(\.name), path: place.path(name))
            }
            try key.read(value, &section, place)
        }
        return section
    }

    /// Each key's range or form (rules between sections: `ConfigValidator`).
    static func check(_ section: Self, _ place: KeyPlace) throws {
        for key in keys { try key.check(section, place) }
    }
}

/// One key of the configuration, declared once: its name, TOML type, one-line
/// doc, how it is read into its section, how its value is checked, and its
/// default (read off the section's `init()`, so it is written only there).
struct ConfigKey<Section: ConfigSection> {
    let name: String
    /// The TOML type, as type errors name it ("integer", "string", ...).
    let type: String
    let doc: String
    /// The default as TOML text, e.g. `4`, `"info"`, `["A", "B"]`.
    let defaultText: String
    /// A table of free-form keys (`[kafka.properties]`), not a single value.
    var isTable = false
    let read: (TOMLValueConvertible, inout Section, KeyPlace) throws -> Void
    let check: (Section, KeyPlace) throws -> Void

    var description: KeyDescription { KeyDescription(name: name, type: type, doc: doc, defaultText: defaultText, isTable: isTable) }
}

/// What a declared key is, without its section's type: for docs and the tests that hold them to the keys.
struct KeyDescription: Sendable, Equatable {
    let name: String
    let type: String
    let doc: String
    let defaultText: String
    let isTable: Bool
}

extension ConfigKey {
    /// An integer, refused outside `range` with "must be between A and B, got V".
    static func int(_ name: String, _ field: WritableKeyPath<Section, Int>, _ range: ClosedRange<Int>, doc: String) -> Self {
        ConfigKey(name: name, type: "integer", doc: doc, defaultText: String(Section()[keyPath: field]),
                  read: { value, section, place in section[keyPath: field] = try place.reader.int(value, place.path(name), table: place.table) },
                  check: { section, place in
                      let value = section[keyPath: field]
                      if !range.contains(value) {
                          throw place.error(name, "must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
                      }
                  })
    }

    /// A string; `problem` says what is wrong with a value, nil when it is fine.
    static func string(_ name: String, _ field: WritableKeyPath<Section, String>, doc: String,
                       problem: @escaping (String) -> String? = { _ in nil }) -> Self {
        ConfigKey(name: name, type: "string", doc: doc, defaultText: "\"\(Section()[keyPath: field])\"",
                  read: { value, section, place in section[keyPath: field] = try place.reader.string(value, place.path(name), table: place.table) },
                  check: { section, place in
                      if let problem = problem(section[keyPath: field]) { throw place.error(name, problem) }
                  })
    }

    static func bool(_ name: String, _ field: WritableKeyPath<Section, Bool>, doc: String) -> Self {
        ConfigKey(name: name, type: "boolean", doc: doc, defaultText: String(Section()[keyPath: field]),
                  read: { value, section, place in section[keyPath: field] = try place.reader.bool(value, place.path(name), table: place.table) },
                  check: { _, _ in })
    }

    /// An array of strings; `problem` looks at the whole list (an element's
    /// problem should name the element).
    static func strings(_ name: String, _ field: WritableKeyPath<Section, [String]>, doc: String,
                        problem: @escaping ([String]) -> String? = { _ in nil }) -> Self {
        let defaults = Section()[keyPath: field].map { "\"\($0)\"" }.joined(separator: ", ")
        return ConfigKey(name: name, type: "array of strings", doc: doc, defaultText: "[\(defaults)]",
                         read: { value, section, place in
                             section[keyPath: field] = try place.reader.stringList(value, place.path(name), table: place.table)
                         },
                         check: { section, place in
                             if let problem = problem(section[keyPath: field]) { throw place.error(name, problem) }
                         })
    }

    /// A sub-table of free-form keys whose values are kept as text (librdkafka properties are strings).
    static func textTable(_ name: String, _ field: WritableKeyPath<Section, [String: String]>, doc: String) -> Self {
        ConfigKey(name: name, type: "table", doc: doc, defaultText: "{}", isTable: true,
                  read: { value, section, place in
                      let path = place.path(name)
                      for (entry, text) in try place.reader.table(value, path) {
                          section[keyPath: field][entry] = try place.reader.scalarText(text, "\(path).\(entry)", table: "\(place.table).\(name)")
                      }
                  },
                  check: { _, _ in })
    }
}
