import Foundation
import Testing
@testable import Scheduler

/// `config.toml` and README.md document exactly the keys declared in
/// `ConfigKeys.swift`, so a key added there without docs (or a documented
/// key the loader no longer knows) fails here.
@Suite("Configuration: the declared keys are the documented keys", .sharesMachine)
struct ConfigDocsTests {
    /// One `key = value` line of `config.toml`, with the table header above it.
    struct Entry: Equatable {
        let header: String
        let key: String
        let commented: Bool
    }

    static let root = URL(fileURLWithPath: repositoryScripts).deletingLastPathComponent()

    /// Every key line of `config.toml`, commented (`# key = value`) or not.
    /// A commented header (`# [kafka.properties]`) counts as a header.
    static func entries(_ text: String) -> (entries: [Entry], headers: Set<String>) {
        var header = ""
        var headers: Set<String> = []
        var entries: [Entry] = []
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            let commented = line.hasPrefix("#")
            let body = commented ? line.drop { $0 == "#" || $0 == " " } : Substring(line)
            if body.hasPrefix("["), body.hasSuffix("]") {
                header = String(body)
                headers.insert(header)
            } else if let match = body.firstMatch(of: /^"?([A-Za-z0-9_.]+)"?\s*=/) {
                entries.append(Entry(header: header, key: String(match.1), commented: commented))
            }
        }
        return (entries, headers)
    }

    /// The README's `## Configuration` section, up to the next `## `.
    static func readmeConfigSection() throws -> Substring {
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let start = try #require(readme.range(of: "\n## Configuration\n"))
        let rest = readme[start.upperBound...]
        return rest[..<(rest.range(of: "\n## ")?.lowerBound ?? rest.endIndex)]
    }

    static func shippedConfig() throws -> String {
        try String(contentsOf: root.appendingPathComponent("config.toml"), encoding: .utf8)
    }

    @Test("every declared key is in config.toml, as a key or a commented key, under its table")
    func configTomlDocumentsEveryKey() throws {
        let (entries, headers) = Self.entries(try Self.shippedConfig())
        for table in ConfigTable.all {
            for key in table.keys {
                if key.isTable {
                    #expect(headers.contains("[\(table.name).\(key.name)]"), "config.toml lacks [\(table.name).\(key.name)]")
                } else {
                    #expect(entries.contains { $0.header == table.header && $0.key == key.name },
                            "config.toml lacks \(table.header) \(key.name)")
                }
            }
        }
    }

    @Test("config.toml sets no key that is not declared")
    func configTomlHasNoUndeclaredKey() throws {
        let (entries, _) = Self.entries(try Self.shippedConfig())
        // Sub-tables such as [kafka.properties] hold free-form keys.
        let freeForm = Set(ConfigTable.all.flatMap { table in table.keys.filter(\.isTable).map { "[\(table.name).\($0.name)]" } })
        let set = entries.filter { !$0.commented && !freeForm.contains($0.header) }
        #expect(!set.isEmpty)
        for entry in set {
            let table = ConfigTable.all.first { $0.header == entry.header }
            #expect(table?.keys.contains { $0.name == entry.key } == true, "config.toml sets undeclared \(entry.header) \(entry.key)")
        }
    }

    @Test("every declared key has a row in the README's configuration table, with its default")
    func readmeDocumentsEveryKey() throws {
        let section = try Self.readmeConfigSection()
        for table in ConfigTable.all {
            for key in table.keys {
                if key.isTable {
                    #expect(section.contains("| `[\(table.name).\(key.name)]` |"), "README lacks [\(table.name).\(key.name)]")
                    continue
                }
                let row = section.split(separator: "\n").first { $0.hasPrefix("| `\(table.header) \(key.name)` |") }
                #expect(row != nil, "README's configuration table lacks \(table.header) \(key.name)")
                #expect(row.map { $0.contains("| `\(key.defaultText)` |") } ?? true,
                        "README shows another default for \(table.header) \(key.name) than \(key.defaultText)")
            }
        }
    }
}
