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
                let required = requiredFunction(for: path, in: directory)
                let defined = await required.asyncMap { await host.hasFunction($0) }
                await host.close()
                if let required, defined == false {
                    problems.append("\(path): the script must define a global function \(required)(...)")
                } else {
                    summary.append("\(path): ok")
                }
            } catch {
                problems.append("\(error)")
            }
        }
        return (problems, summary)
    }

    /// The function a script must define: `process` in process.lua,
    /// `rotate` in rotate.lua and in the policies folder; nil for others.
    static func requiredFunction(for path: String, in directory: URL) -> String? {
        let url = URL(fileURLWithPath: path)
        if url.lastPathComponent == GroupRuntime.processScript { return "process" }
        if url.lastPathComponent == GroupRuntime.rotateScript || url.deletingLastPathComponent().lastPathComponent == "policies" { return "rotate" }
        return nil
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

extension Optional {
    /// `map` with an async transform.
    func asyncMap<T>(_ transform: (Wrapped) async -> T) async -> T? {
        guard let value = self else { return nil }
        return await transform(value)
    }
}
