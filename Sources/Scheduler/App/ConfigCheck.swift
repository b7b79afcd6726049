import Foundation
import Logging

/// `task-scheduler check`: validates the configuration and loads every script
/// without starting anything (like `nginx -t`).
public enum ConfigCheck {
    /// Every problem found, each naming its file (and line where known);
    /// empty when all is well. `summary` lists what was checked.
    public static func run(configPath: String?, scriptsDirectory: String, logger: Logger) async -> (problems: [String], summary: [String]) {
        var problems: [String] = []
        var summary: [String] = []
        do {
            let config = try ConfigLoader.load(path: configPath)
            summary.append("config \(configPath ?? (FileManager.default.fileExists(atPath: ConfigLoader.defaultPath) ? ConfigLoader.defaultPath : "(built-in defaults)")): ok, \(config.groups.count) group(s), "
                + (config.usesEmbeddedBroker ? "embedded broker" : "brokers \(config.kafka.brokers.joined(separator: ","))"))
        } catch {
            problems.append("\(error)")
        }
        let directory = URL(fileURLWithPath: scriptsDirectory)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            problems.append("\(scriptsDirectory): scripts directory not found")
            return (problems, summary)
        }
        do {
            let generate = try await GenerateScript.load(scriptsDirectory: scriptsDirectory, logger: logger)
            await generate.close()
            summary.append("\(generate.path): ok")
        } catch {
            problems.append("\(error)")
        }
        for path in otherScripts(in: directory) {
            do {
                let host = try await ScriptHost.load(path: path, worker: "check", group: nil, logger: logger)
                await host.close()
                summary.append("\(path): ok")
            } catch {
                problems.append("\(error)")
            }
        }
        return (problems, summary)
    }

    /// Every `.lua` file under `directory` except `generate.lua`, sorted.
    static func otherScripts(in directory: URL) -> [String] {
        guard let walker = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil) else { return [] }
        let generate = directory.appendingPathComponent(GenerateScript.fileName).standardizedFileURL.path
        return walker.compactMap { ($0 as? URL)?.standardizedFileURL }
            .filter { $0.pathExtension == "lua" && $0.path != generate }
            .map(\.path)
            .sorted()
    }
}
