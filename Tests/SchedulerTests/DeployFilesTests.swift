import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Scheduler

/// The metric names a PromQL expression reads: identifiers outside label
/// matchers, ranges, strings and `by (...)` lists that are not followed by
/// `(` (functions) and are not PromQL keywords.
func promQLMetricNames(_ expr: String) -> Set<String> {
    var text = expr
    // Strings, label matchers, ranges, grouping labels: none name a metric.
    for pattern in [#""[^"]*""#, #"\{[^}]*\}"#, #"\[[^\]]*\]"#, #"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"#] {
        text = text.replacingOccurrences(of: pattern, with: " ", options: .regularExpression)
    }
    let keywords: Set<String> = ["and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"]
    var names: Set<String> = []
    let identifier = try! NSRegularExpression(pattern: #"(?<![A-Za-z0-9_:.$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?"#)
    let range = NSRange(text.startIndex..., in: text)
    for match in identifier.matches(in: text, range: range) where match.range(at: 2).location == NSNotFound {
        let name = String(text[Range(match.range(at: 1), in: text)!])
        if !keywords.contains(name.lowercased()) { names.insert(name) }
    }
    return names
}

/// Every PromQL expression of the Grafana dashboard: panel targets (rows included) and template queries.
func dashboardExpressions() throws -> [String] {
    let data = try Data(contentsOf: repositoryRoot.appendingPathComponent("deploy/grafana/task-scheduler.json"))
    let dashboard = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    var expressions: [String] = []
    func visit(_ panels: [[String: Any]]) {
        for panel in panels {
            for target in panel["targets"] as? [[String: Any]] ?? [] {
                if let expr = target["expr"] as? String { expressions.append(expr) }
            }
            visit(panel["panels"] as? [[String: Any]] ?? [])
        }
    }
    visit(dashboard["panels"] as? [[String: Any]] ?? [])
    let variables = (dashboard["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? []
    for variable in variables where variable["type"] as? String == "query" {
        if let query = (variable["query"] as? [String: Any])?["query"] as? String {
            // label_values(metric, label): the metric is what is read.
            expressions.append(query.replacingOccurrences(of: #"label_values\(([^,]+),.*\)"#, with: "$1", options: .regularExpression))
        }
    }
    return expressions
}

/// Every `expr:` of the alert rules (kept on one line each), and the number of alerts.
func alertExpressions() throws -> (expressions: [String], alerts: Int) {
    let text = try String(contentsOf: repositoryRoot.appendingPathComponent("deploy/prometheus/alerts.yml"), encoding: .utf8)
    let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
    let expressions = lines.filter { $0.hasPrefix("expr:") }.map { String($0.dropFirst(5)).trimmingCharacters(in: .whitespaces) }
    return (expressions, lines.filter { $0.hasPrefix("- alert:") }.count)
}

/// The series names in a `/metrics` answer.
func exportedNames(_ text: String) -> Set<String> {
    Set(text.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { line in
        line.split(whereSeparator: { $0 == "{" || $0 == " " }).first.map(String.init)
    })
}

@Suite("Deploy files: the Grafana dashboard and the alert rules", .sharesMachine)
struct DeployFilesTests {
    @Test("metric names are read out of PromQL", arguments: [
        ("sum by (instance, group) (rate(scheduler_x_total{instance=~\"$instance\"}[$__rate_interval]))", ["scheduler_x_total"]),
        ("histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m]))) > 5", ["a_bucket"]),
        ("up{job=\"task-scheduler\"} == 0", ["up"]),
        ("max by (g) (x) > 1000 and sum by (g) (deriv(y[15m])) > 0", ["x", "y"]),
        ("increase(z{result=\"failed\"}[15m]) > 0 unless on (instance) w", ["z", "w"]),
    ])
    func parser(expr: String, expected: [String]) {
        #expect(promQLMetricNames(expr) == Set(expected))
    }

    @Test("the files cover what an operator watches", arguments: [
        "scheduler_messages_processed_total", "scheduler_partition_lag", "scheduler_handoff_gap_seconds_bucket",
        "scheduler_lua_errors_total", "scheduler_lua_call_seconds_bucket", "scheduler_messages_dead_lettered_total",
        "scheduler_emits_in_flight", "scheduler_schedule_fires_total", "scheduler_schedule_fire_delay_seconds_bucket",
        "scheduler_http_requests_total", "scheduler_http_request_duration_seconds_bucket",
    ])
    func dashboardCovers(metric: String) throws {
        #expect(try dashboardExpressions().contains { promQLMetricNames($0).contains(metric) })
    }

    @Test("the alert rules: one expression per alert, on lag, dead letters, script errors, reloads, schedules and a daemon gone")
    func alertsCover() throws {
        let (expressions, alerts) = try alertExpressions()
        #expect(alerts >= 6 && expressions.count == alerts)
        let used = expressions.reduce(into: Set<String>()) { $0.formUnion(promQLMetricNames($1)) }
        for metric in ["up", "scheduler_partition_lag", "scheduler_messages_dead_lettered_total", "scheduler_lua_errors_total",
                       "scheduler_script_reloads_total", "scheduler_schedule_fire_delay_seconds_bucket"] {
            #expect(used.contains(metric), "no alert on \(metric)")
        }
    }

    @Test("every metric the dashboard and the alert rules read is exported by a running daemon", .timeLimit(.minutes(3)))
    func metricsExported() async throws {
        let expressions = try dashboardExpressions() + alertExpressions().expressions
        var used: Set<String> = []
        for expr in expressions {
            let names = promQLMetricNames(expr)
            #expect(!names.isEmpty, "no metric in \(expr)")
            used.formUnion(names)
        }
        // Not the daemon's: Prometheus' own series for each scrape target.
        used.remove("up")
        // Counted only when the broker fails a publication: checked against
        // the names the code registers instead of provoked here.
        let onFailure = [MetricName.publishErrors, MetricName.scheduleFireErrors]
        for name in onFailure { #expect(used.remove(name) != nil, "\(name) is no longer used: drop it from this list") }
        let needed = used

        let topic = try TestBroker.freshTopic("deploy-metrics", partitions: 2)
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": """
            function process(msg)
              if msg.payload == "bad" then error("bad payload") end
              if msg.payload == "echo" then scheduler.emit("\(topic)-out", "echoed") end
            end
            """])
        var config = poolConfig(topics: [topic], workers: 2, sliceMs: 10)
        config.groups[0].maxAttempts = 1
        config.schedules.enabled = true
        let app = try await buildApplication(LaunchOptions(config: config, scriptsDirectory: scripts, logger: quietLogger))
        try await app.test(.live) { client in
            try await publishKeyed(topic: topic, count: 50, keys: 4)
            for payload in ["bad", "echo"] {
                #expect(try await post(client, #"{"topic": "\#(topic)", "message": "\#(payload)"}"#).status == .ok)
            }
            _ = try await client.execute(uri: "/scripts/reload", method: .post)
            #expect(try await eventually(timeout: .seconds(60)) { try await schedulesLive(client) })
            _ = try await postSchedule(client, #"{"topic": "\#(topic)", "message": "scheduled", "after": "100ms"}"#)
            var exported: Set<String> = []
            await eventually(timeout: .seconds(60)) {
                let text = (try? await client.execute(uri: "/metrics", method: .get)).map { String(buffer: $0.body) } ?? ""
                exported = exportedNames(text)
                return needed.isSubset(of: exported)
            }
            #expect(needed.subtracting(exported).isEmpty, "used by the dashboard or the alerts but not exported: \(needed.subtracting(exported).sorted())")
        }
    }
}
