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
        var limits = LuaLimits.standard
        do {
            let config = try ConfigLoader.load(path: configPath)
            limits = LuaLimits(config.scripts)
            let shown = configPath ?? (FileManager.default.fileExists(atPath: ConfigLoader.defaultPath) ? ConfigLoader.defaultPath : "(built-in defaults)")
            summary.append("config \(shown): ok, \(config.groups.count) group(s), "
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
        let generate = directory.appendingPathComponent(ScriptCatalog.generate).path
        if !FileManager.default.fileExists(atPath: generate) {
            problems.append("\(generate): script file not found")
        }
        for path in scripts(in: directory) {
            do {
                let host = try await ScriptHost.load(source: ScriptSource.read(path: path), limits: limits, worker: "check", group: nil,
                                                     logger: logger, features: [SchedulePlacement.scriptFeature(nil)])
                let required = requiredFunction(for: path)
                let defined = await required.asyncMap { await host.hasFunction($0) }
                // generate.lua's `tasks` (the pool's initial content) must be well formed.
                let tasksProblem: Error?
                do {
                    if URL(fileURLWithPath: path).lastPathComponent == ScriptCatalog.generate {
                        _ = try await host.withState { try GenerateScript.readTasks($0.global("tasks"), path: path).count }
                        // Its named schedules too (at start they are only logged: the daemon runs on).
                        let schedules = try await host.withState { $0.global("schedules") }
                        do {
                            _ = try ScriptSchedules.read(schedules, now: RFC3339.nowMs)
                        } catch {
                            throw LuaError(script: path, line: nil, message: "global 'schedules': \(error)")
                        }
                    }
                    tasksProblem = nil
                } catch {
                    tasksProblem = error
                }
                await host.close()
                if let tasksProblem { throw tasksProblem }
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

    /// The function a script must define: by its name for the three scripts,
    /// `rotate` for the policies folder; nil for others.
    static func requiredFunction(for path: String) -> String? {
        let url = URL(fileURLWithPath: path)
        if url.deletingLastPathComponent().lastPathComponent == "policies" { return "rotate" }
        return ScriptCatalog.requiredFunction(url.lastPathComponent)
    }

    /// Every `.lua` file under `directory`, sorted.
    static func scripts(in directory: URL) -> [String] {
        guard let walker = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil) else { return [] }
        return walker.compactMap { ($0 as? URL)?.standardizedFileURL }
            .filter { $0.pathExtension == "lua" }
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
