import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Scheduler

/// Starts the real application (through `buildApplication`, as `main` does)
/// on an ephemeral port and runs `body` against it.
func withApplication<T: Sendable>(
    _ config: SchedulerConfig, scripts: String = repositoryScripts,
    _ body: @escaping @Sendable (any TestClientProtocol) async throws -> T
) async throws -> T {
    let app = try await buildApplication(LaunchOptions(config: config, scriptsDirectory: scripts, logger: quietLogger))
    return try await app.test(.live) { client in try await body(client) }
}

func post(_ client: some TestClientProtocol, _ body: String, contentType: String = "application/json") async throws -> TestResponse {
    try await client.execute(uri: "/tasks/generate", method: .post, headers: [.contentType: contentType], body: ByteBuffer(string: body))
}

/// The `error` field of a JSON error body.
func errorText(_ response: TestResponse) -> String? {
    let object = try? JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
    return object?["error"] as? String
}

@Suite("HTTP task API", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct TaskAPITests {
    @Test("POST /tasks/generate answers \"Success\" once the broker has the task, as posted, with key and headers")
    func generateSuccess() async throws {
        let topic = try TestBroker.freshTopic("api")
        try await withApplication(testConfig()) { client in
            let response = try await post(client, #"{"topic": "\#(topic)", "message": "EE", "headers": {"h1": "v1"}}"#)
            #expect(response.status == .ok)
            #expect(String(buffer: response.body) == "\"Success\"")
            #expect(response.headers[.contentType] == "application/json")
            let keyed = try await post(client, #"{"topic": "\#(topic)", "message": "FF", "key": "user-7"}"#)
            #expect(keyed.status == .ok)
        }
        let messages = try await readAll(topic: topic, count: 2)
        let byPayload = Dictionary(uniqueKeysWithValues: messages.map { ($0.value.utf8String, $0) })
        // Published at once as posted; the ticks publish it as generate() says.
        #expect(byPayload["EE"] != nil && byPayload["EE"]?.key == nil)
        #expect(byPayload["EE"]?.headers == [KafkaHeader("h1", "v1")])
        #expect(byPayload["FF"]?.key?.utf8String == "user-7")
    }

    @Test("the first post to a topic is answered without waiting for librdkafka's own lookup of the topic: on a cluster, and on the embedded broker, where the topic does not exist yet", arguments: [false, true])
    func firstPostToNewTopic(embedded: Bool) async throws {
        var config = testConfig()
        if embedded { config.kafka.brokers = [] }  // the daemon's own broker creates topics at their first publish
        try await withApplication(config) { client in
            var times: [Duration] = []
            for index in 0..<5 {
                let topic = embedded ? "new-topic-\(index)-\(UUID().uuidString.prefix(6))" : try TestBroker.freshTopic("first-post")
                let started = ContinuousClock.now
                let response = try await post(client, #"{"topic": "\#(topic)", "message": "m", "once": true}"#)
                times.append(ContinuousClock.now - started)
                #expect(response.status == .ok)
            }
            // librdkafka looks unknown topics up once a second: 0.8 to 1.0 s
            // per first post without the publisher's own metadata request.
            let median = times.sorted()[times.count / 2]
            #expect(median < .milliseconds(250), "\(times)")
        }
    }

    @Test("bad bodies get 400 with a JSON error saying what is wrong", arguments: [
        (#"{"topic": "E""#, "not valid JSON"),
        ("", "request body is empty"),
        ("[1, 2]", "must be a JSON object"),
        (#"{"message": "x"}"#, "missing field 'topic'"),
        (#"{"topic": "E"}"#, "missing field 'message'"),
        (#"{"topic": 5, "message": "x"}"#, "field 'topic' must be a string"),
        (#"{"topic": "E", "message": ["x"]}"#, "field 'message' must be a string"),
        (#"{"topic": "E", "message": "x", "key": 12}"#, "field 'key' must be a string"),
        (#"{"topic": "E", "message": "x", "headers": {"a": 1}}"#, "header 'a' must have a string value"),
        (#"{"topic": "E", "message": "x", "headers": "a"}"#, "field 'headers' must be an object"),
        (#"{"topic": "E", "message": "x", "extra": 1}"#, "unknown field(s): 'extra'"),
        (#"{"topic": "E", "message": "x", "once": 1}"#, "field 'once' must be true or false"),
        (#"{"topic": "E", "message": "x", "once": "yes"}"#, "field 'once' must be true or false"),
        (#"{"topic": "bad topic", "message": "x"}"#, "may only contain"),
        (#"{"topic": "..", "message": "x"}"#, "must not be '.' or '..'"),
        (#"{"topic": "", "message": "x"}"#, "must not be empty"),
    ])
    func badBodies(body: String, expected: String) async throws {
        try await withApplication(testConfig()) { client in
            let response = try await post(client, body)
            #expect(response.status == .badRequest)
            #expect(errorText(response)?.contains(expected) == true, "got \(String(buffer: response.body))")
        }
    }

    @Test("a topic name over 249 characters and an oversized message get 400; an oversized body 413")
    func limits() async throws {
        var config = testConfig()
        config.producer.maxMessageBytes = 100
        config.api.maxBodyBytes = 1000
        try await withApplication(config) { client in
            let longTopic = try await post(client, #"{"topic": "\#(String(repeating: "t", count: 250))", "message": "x"}"#)
            #expect(longTopic.status == .badRequest)
            #expect(errorText(longTopic)?.contains("limit is 249") == true)
            let bigMessage = try await post(client, #"{"topic": "E", "message": "\#(String(repeating: "m", count: 200))"}"#)
            #expect(bigMessage.status == .badRequest)
            #expect(errorText(bigMessage)?.contains("producer.max_message_bytes") == true)
            let bigBody = try await post(client, #"{"topic": "E", "message": "\#(String(repeating: "m", count: 2000))"}"#)
            #expect(bigBody.status == .contentTooLarge)
            #expect(errorText(bigBody)?.contains("api.max_body_bytes") == true)
        }
    }

    @Test("on_task refusing a task gives 400 with its reason")
    func onTaskRefusal() async throws {
        let scripts = try makeScripts(["generate.lua": """
            function generate() end
            function on_task(task)
              if task.message == "no" then return nil, "messages saying no are refused" end
              return task
            end
            """])
        try await withApplication(testConfig(), scripts: scripts) { client in
            let response = try await post(client, #"{"topic": "E", "message": "no"}"#)
            #expect(response.status == .badRequest)
            #expect(errorText(response) == "messages saying no are refused")
        }
    }

    @Test("GET /health reports status, bootstrap servers and whether the broker is embedded")
    func health() async throws {
        try await withApplication(testConfig()) { client in
            let response = try await client.execute(uri: "/health", method: .get)
            #expect(response.status == .ok)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
            #expect(object["status"] as? String == "ok")
            #expect(object["bootstrap_servers"] as? String == TestBroker.shared.bootstrapServers)
            #expect(object["embedded_broker"] as? Bool == false)
        }
    }

    @Test("unknown paths get 404 and wrong methods 405, both as JSON")
    func notFoundAndMethod() async throws {
        try await withApplication(testConfig()) { client in
            let missing = try await client.execute(uri: "/nope", method: .get)
            #expect(missing.status == .notFound)
            #expect(errorText(missing)?.contains("/nope") == true)
            let wrong = try await client.execute(uri: "/tasks", method: .put)
            #expect(wrong.status == .methodNotAllowed)
            #expect(wrong.headers[.allow] == "GET, DELETE")
            let xml = try await post(client, "<task/>", contentType: "application/xml")
            #expect(xml.status == .unsupportedMediaType)
        }
    }

    @Test("with the broker unreachable: 503 \"Producer timed out.\" after the timeout, and GET /tasks/pending lists the task meanwhile")
    func brokerUnreachable() async throws {
        var config = testConfig()
        config.kafka.brokers = ["127.0.0.1:1"]
        config.producer.timeoutMs = 4000
        try await withApplication(config) { client in
            async let answer = post(client, #"{"topic": "E", "message": "waiting", "once": true}"#)
            // A second connection: requests on one HTTP/1.1 connection are answered in order.
            let second = TestClient(host: "localhost", port: try #require(client.port), configuration: .init())
            second.connect()
            // Wait for the post to reach the daemon (a loaded machine may take a while).
            var pending = try await second.get("/tasks/pending")
            try await eventually(timeout: .seconds(3)) {
                pending = try await second.get("/tasks/pending")
                return String(buffer: pending.body ?? ByteBuffer()) != "[]"
            }
            let counted = try await second.get("/health")
            try await second.shutdown()
            #expect(String(buffer: counted.body ?? ByteBuffer()).contains(#""pending_tasks":1"#))
            let list = try JSONSerialization.jsonObject(with: Data(buffer: pending.body ?? ByteBuffer())) as? [[String: String]]
            #expect(list == [["topic": "E", "message": "waiting"]])
            let response = try await answer
            #expect(response.status == .serviceUnavailable)
            #expect(errorText(response) == "Producer timed out.")
            let after = try await client.execute(uri: "/tasks/pending", method: .get)
            #expect(String(buffer: after.body) == "[]")
            // /health still counts pending tasks; none are left.
            let health = try await client.execute(uri: "/health", method: .get)
            #expect(String(buffer: health.body).contains(#""pending_tasks":0"#))
        }
    }

    @Test("the generator publishes what generate() returns every interval")
    func generatorTicks() async throws {
        let topic = try TestBroker.freshTopic("gen")
        let scripts = try makeScripts(["generate.lua": """
            function generate(tick)
              if tick <= 3 then return { { topic = "\(topic)", message = "tick " .. tick, key = "k" } } end
            end
            """])
        let messages = try await withApplication(testConfig(intervalMs: 50), scripts: scripts) { _ in
            try await readAll(topic: topic, count: 3)
        }
        #expect(messages.sorted { $0.offset < $1.offset }.map { $0.value.utf8String } == ["tick 1", "tick 2", "tick 3"])
    }
}
