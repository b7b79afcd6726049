import Foundation
import Testing
@testable import Scheduler

@Suite("Configuration", .sharesMachine)
struct ConfigTests {
    @Test("the shipped config.toml loads and equals the built-in defaults")
    func shippedConfigIsTheDefault() throws {
        let path = URL(fileURLWithPath: repositoryScripts).deletingLastPathComponent().appendingPathComponent("config.toml").path
        let config = try ConfigLoader.load(path: path)
        #expect(config == SchedulerConfig())
        #expect(config.usesEmbeddedBroker)
        #expect(config.groups == [GroupConfig(name: "workers", topics: ["A", "B", "C", "D"], workers: 4, sliceMs: 6000)])
    }

    @Test("every section of the schema is read")
    func fullSchema() throws {
        let config = try ConfigLoader.parse("""
            [kafka]
            brokers = ["k1:9092", "k2:9092"]
            partitions = 8
            [kafka.properties]
            "security.protocol" = "SASL_SSL"
            "socket.timeout.ms" = 30000
            [api]
            listen = "0.0.0.0:8080"
            max_body_bytes = 1024
            [producer]
            interval_ms = 100
            timeout_ms = 2000
            [log]
            level = "debug"
            [[groups]]
            name = "g1"
            topics = ["X"]
            workers = 2
            slice_ms = 50
            [[groups]]
            name = "g2"
            """, file: "x.toml")
        #expect(config.kafka.brokers == ["k1:9092", "k2:9092"])
        #expect(config.kafka.partitions == 8)
        #expect(config.kafka.properties == ["security.protocol": "SASL_SSL", "socket.timeout.ms": "30000"])
        #expect(config.api.hostAndPort.host == "0.0.0.0" && config.api.hostAndPort.port == 8080)
        #expect(config.api.maxBodyBytes == 1024)
        #expect(config.producer.intervalMs == 100 && config.producer.timeoutMs == 2000)
        #expect(config.log.level == "debug")
        #expect(config.groups.map(\.name) == ["g1", "g2"])
        #expect(config.groups[0].sliceMs == 50 && config.groups[1].workers == 4)
    }

    @Test("the Rust seed's flat config is accepted unchanged and mapped onto the schema")
    func seedConfig() throws {
        let config = try ConfigLoader.parse("""
            title = "Task scheduler"
            producer_timeout = 4000
            consumer_timeout = 7000
            query_timeout = 3
            enable_auto_commit = true
            brokers = ["localhost:29092"]
            inital_topic_list = ["A", "B", "C", "D"]
            num_workers = 3
            num_groups = 2
            listening_port = 5001
            """, file: "seed.toml")
        #expect(config.producer.timeoutMs == 4000)
        // query_timeout is in seconds, as the seed's code sleeps.
        #expect(config.producer.intervalMs == 3000)
        #expect(config.kafka.brokers == ["localhost:29092"])
        #expect(config.api.listen == "127.0.0.1:5001")
        #expect(config.groups.map(\.name) == ["group-0", "group-1"])
        #expect(config.groups.allSatisfy { $0.workers == 3 && $0.sliceMs == 7000 && $0.topics == ["A", "B", "C", "D"] })
    }

    @Test("the seed's own example config runs as it is and ticks every 5 s")
    func seedExample() throws {
        let config = try ConfigLoader.parse("""
            title = "Task scheduler"
            producer_timeout = 5000
            consumer_timeout = 6000
            query_timeout = 5
            enable_auto_commit = false
            brokers = "localhost:29092"
            inital_topic_list = ["A", "B", "C", "D"]
            num_workers = 4
            num_groups = 1
            listening_port = 5000
            """, file: "seed.toml")
        #expect(config.producer.intervalMs == 5000)
        #expect(config.groups.count == 1 && config.groups[0].sliceMs == 6000)
    }

    @Test("a seed query_timeout out of range names the key, the unit and the line")
    func seedQueryTimeoutRange() {
        #expect {
            _ = try ConfigLoader.parse("title = \"x\"\nquery_timeout = 0\n", file: "seed.toml")
        } throws: { error in
            "\(error)".contains("seed.toml:2") && "\(error)".contains("query_timeout") && "\(error)".contains("seconds")
        }
    }

    @Test("[producer] max_pool_tasks and pool_topic: defaults, read, and checked")
    func poolKeys() throws {
        #expect(SchedulerConfig().producer.maxPoolTasks == 1000)
        #expect(SchedulerConfig().producer.poolTopic == "task-scheduler.pool")
        let config = try ConfigLoader.parse("[producer]\nmax_pool_tasks = 10\npool_topic = \"my.pool\"\n", file: "p.toml")
        #expect(config.producer.maxPoolTasks == 10 && config.producer.poolTopic == "my.pool")
        #expect {
            _ = try ConfigLoader.parse("[producer]\nmax_pool_tasks = 0\n", file: "p.toml")
        } throws: { error in
            "\(error)".contains("p.toml:2") && "\(error)".contains("producer.max_pool_tasks")
        }
        #expect {
            _ = try ConfigLoader.parse("[producer]\npool_topic = \"no spaces\"\n", file: "p.toml")
        } throws: { error in
            "\(error)".contains("producer.pool_topic")
        }
    }

    @Test("[[groups]] lanes and lane_max_ahead: defaults (one lane = one lease per partition) and read")
    func laneKeys() throws {
        #expect(GroupConfig().lanes == 1 && GroupConfig().laneMaxAhead == 10_000)
        let config = try ConfigLoader.parse("[[groups]]\nlanes = 4\nlane_max_ahead = 500\n", file: "l.toml")
        #expect(config.groups[0].lanes == 4 && config.groups[0].laneMaxAhead == 500)
    }

    @Test("[schedules]: defaults, read, and checked with the key and line named")
    func scheduleKeys() throws {
        let defaults = SchedulerConfig().schedules
        #expect(defaults.enabled && defaults.topic == "task-scheduler.schedules" && defaults.group == "task-scheduler.schedules")
        #expect(defaults.partitions == 4 && defaults.maxSchedules == 1_000_000)
        let config = try ConfigLoader.parse(
            "[schedules]\nenabled = false\ntopic = \"my.schedules\"\ngroup = \"g\"\npartitions = 8\nmax_schedules = 5\n", file: "s.toml")
        #expect(!config.schedules.enabled && config.schedules.topic == "my.schedules" && config.schedules.group == "g")
        #expect(config.schedules.partitions == 8 && config.schedules.maxSchedules == 5)
        for (text, expected) in [
            ("[schedules]\npartitions = 0\n", "s.toml:2"), ("[schedules]\ntopic = \"no spaces\"\n", "schedules.topic"),
            ("[schedules]\nparts = 4\n", "parts"), ("[schedules]\nenabled = 1\n", "schedules.enabled"),
            ("[producer]\npool_topic = \"x\"\n[schedules]\ntopic = \"x\"\n", "must differ from producer.pool_topic"),
        ] {
            #expect {
                _ = try ConfigLoader.parse(text, file: "s.toml")
            } throws: { error in
                "\(error)".contains(expected)
            }
        }
    }

    @Test("[cluster]: defaults, read, and checked with the key and line named")
    func clusterKeys() throws {
        let defaults = SchedulerConfig().cluster
        #expect(defaults.reportsTopic == "task-scheduler.reports" && defaults.reportIntervalMs == 1000 && defaults.name.isEmpty)
        let config = try ConfigLoader.parse("[cluster]\nreports_topic = \"r\"\nreport_interval_ms = 250\nname = \"east-1\"\n", file: "c.toml")
        #expect(config.cluster.reportsTopic == "r" && config.cluster.reportIntervalMs == 250 && config.cluster.name == "east-1")
        for (text, expected) in [
            ("[cluster]\nreport_interval_ms = 10\n", "c.toml:2"), ("[cluster]\nreport_interval_ms = 10\n", "between 100 and 60000"),
            ("[cluster]\nreports_topic = \"a b\"\n", "cluster.reports_topic"), ("[cluster]\ninterval = 1\n", "interval"),
            ("[cluster]\nreports_topic = \"task-scheduler.schedules\"\n", "must differ"), ("[cluster]\nname = 3\n", "cluster.name"),
        ] {
            #expect {
                _ = try ConfigLoader.parse(text, file: "c.toml")
            } throws: { error in
                "\(error)".contains(expected)
            }
        }
    }

    @Test("a missing file named on the command line is an error naming the file")
    func missingFile() {
        #expect {
            _ = try ConfigLoader.load(path: "/nonexistent/config.toml")
        } throws: { error in
            "\(error)" == "/nonexistent/config.toml: file not found"
        }
    }

    @Test("an unknown key names the file, the key and its line")
    func unknownKey() {
        let error = parseError("""
            [api]
            listen = "127.0.0.1:5000"
            lisen = "x"
            """)
        #expect(error?.file == "bad.toml")
        #expect(error?.key == "api.lisen")
        #expect(error?.line == 3)
        #expect(error?.description.hasPrefix("bad.toml:3: key 'api.lisen': unknown key in [api]") == true)
    }

    @Test("a wrong type names the key, the expected type and the line")
    func wrongType() {
        let error = parseError("""
            [[groups]]
            name = "a"

            [[groups]]
            name = "b"
            workers = "four"
            """)
        #expect(error?.key == "groups[1].workers")
        #expect(error?.line == 6)
        #expect(error?.message == "expected integer, got string")
    }

    @Test("a TOML syntax error carries the line")
    func syntaxError() {
        let error = parseError("""
            [producer]
            interval_ms = 5000
            timeout_ms = = 3
            """)
        #expect(error?.line == 3)
        #expect(error?.message.hasPrefix("TOML syntax error") == true)
    }

    @Test("out-of-range values and duplicate group names are refused", arguments: [
        ("[[groups]]\nworkers = 0", "groups[0].workers", 2),
        ("[[groups]]\nslice_ms = -5", "groups[0].slice_ms", 2),
        ("[[groups]]\nname = \"a\"\n[[groups]]\nname = \"a\"", "groups[1].name", 4),
        ("[[groups]]\ntopics = [\"bad topic\"]", "groups[0].topics", 2),
        ("[api]\nlisten = \"nowhere\"", "api.listen", 2),
        ("[log]\nlevel = \"loud\"", "log.level", 2),
        ("[kafka]\npartitions = 0", "kafka.partitions", 2),
        ("[scripts]\nmax_instructions = 1\nmax_call_ms = 0", "scripts.max_call_ms", 3),
        ("[scripts]\nmax_call_ms = 600001", "scripts.max_call_ms", 2),
        ("[[groups]]\nname = \"g\"\nlanes = 0", "groups[0].lanes", 3),
        ("[[groups]]\nlanes = 257", "groups[0].lanes", 2),
        ("[[groups]]\nlane_max_ahead = 0", "groups[0].lane_max_ahead", 2),
    ])
    func rangeErrors(source: String, key: String, line: Int) {
        let error = parseError(source)
        #expect(error?.key == key)
        #expect(error?.line == line)
    }

    private func parseError(_ source: String) -> ConfigError? {
        do {
            _ = try ConfigLoader.parse(source, file: "bad.toml")
            return nil
        } catch {
            return error as? ConfigError
        }
    }
}

@Suite("Configuration: every key refuses a wrong type", .sharesMachine)
struct ConfigTypeTests {
    static let keys: [(header: String, key: String, path: String, wrong: String)] = [
        ("[kafka]", "brokers", "kafka.brokers", "\"k:9092\""),
        ("[kafka]", "partitions", "kafka.partitions", "\"4\""),
        ("[api]", "listen", "api.listen", "5000"),
        ("[api]", "max_body_bytes", "api.max_body_bytes", "1.5"),
        ("[api]", "token", "api.token", "123"),
        ("[producer]", "interval_ms", "producer.interval_ms", "true"),
        ("[producer]", "timeout_ms", "producer.timeout_ms", "[1]"),
        ("[producer]", "max_message_bytes", "producer.max_message_bytes", "\"big\""),
        ("[producer]", "max_pending", "producer.max_pending", "\"many\""),
        ("[log]", "level", "log.level", "3"),
        ("[scripts]", "max_instructions", "scripts.max_instructions", "\"lots\""),
        ("[scripts]", "max_memory_mb", "scripts.max_memory_mb", "64.0"),
        ("[scripts]", "max_call_ms", "scripts.max_call_ms", "\"2s\""),
        ("[[groups]]", "name", "groups[0].name", "7"),
        ("[[groups]]", "topics", "groups[0].topics", "\"A\""),
        ("[[groups]]", "workers", "groups[0].workers", "\"4\""),
        ("[[groups]]", "slice_ms", "groups[0].slice_ms", "6.0"),
        ("[[groups]]", "max_attempts", "groups[0].max_attempts", "false"),
        ("[[groups]]", "retry_backoff_ms", "groups[0].retry_backoff_ms", "\"soon\""),
        ("[[groups]]", "dead_letter_topic", "groups[0].dead_letter_topic", "1"),
        ("[[groups]]", "lanes", "groups[0].lanes", "\"4\""),
        ("[[groups]]", "lane_max_ahead", "groups[0].lane_max_ahead", "1.5"),
    ]

    @Test("a wrong type names the key and its line", arguments: 0..<keys.count)
    func wrongType(_ index: Int) {
        let entry = Self.keys[index]
        do {
            _ = try ConfigLoader.parse("# comment\n\(entry.header)\n\(entry.key) = \(entry.wrong)\n", file: "types.toml")
            Issue.record("\(entry.path) accepted \(entry.wrong)")
        } catch let error as ConfigError {
            #expect(error.key == entry.path)
            #expect(error.line == 3)
            #expect(error.message.hasPrefix("expected"), "\(error)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test("a missing process.lua stops startup naming the file")
    func missingScript() async throws {
        let scripts = try makeScripts(["generate.lua": "function generate() end"])
        var config = testConfig()
        config.groups = [GroupConfig(name: "missing", topics: ["A"], workers: 1, sliceMs: 100)]
        await #expect {
            _ = try await buildApplication(LaunchOptions(config: config, scriptsDirectory: scripts, logger: quietLogger))
        } throws: { error in
            "\(error)".hasSuffix("scripts/process.lua: script file not found")
        }
    }
}
