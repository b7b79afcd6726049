import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Scheduler

@Suite("API security", .sharesMachine)
struct SecurityTests {
    @Test("with a token set, mutating endpoints answer 401 without it or with a wrong one; reads stay open")
    func token() async throws {
        var config = testConfig()
        config.api.token = "s3cret"
        try await withApplication(config) { client in
            let body = ByteBuffer(string: #"{"topic": "E", "message": "x"}"#)
            let missing = try await client.execute(uri: "/tasks/generate", method: .post, headers: [.contentType: "application/json"], body: body)
            #expect(missing.status == .unauthorized)
            #expect(missing.headers[.wwwAuthenticate] == "Bearer")
            #expect(errorText(missing)?.contains("Authorization: Bearer") == true)
            let wrong = try await client.execute(uri: "/tasks/generate", method: .post, headers: [.authorization: "Bearer nope"], body: body)
            #expect(wrong.status == .unauthorized)
            #expect(errorText(wrong) == "the API token is wrong")
            let reload = try await client.execute(uri: "/scripts/reload", method: .post)
            #expect(reload.status == .unauthorized)
            let good = try await client.execute(uri: "/tasks/generate", method: .post, headers: [.authorization: "Bearer s3cret"], body: body)
            #expect(good.status == .ok)
            #expect(try await client.execute(uri: "/health", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/tasks", method: .get).status == .ok)
        }
    }

    @Test("headers over 80 KiB are refused (SwiftNIO's HTTP/1 limit) and the daemon keeps serving")
    func headerLimit() async throws {
        try await withApplication(testConfig()) { client in
            let port = try #require(client.port)
            let big = TestClient(host: "localhost", port: port, configuration: .init())
            big.connect()
            let huge = String(repeating: "a", count: 100 * 1024)
            let refused = try? await big.get("/health", headers: [HTTPField.Name("X-Big")!: huge])
            #expect(refused == nil || refused?.status == .badRequest)
            try? await big.shutdown()
            #expect(try await client.execute(uri: "/health", method: .get).status == .ok)
        }
    }

    @Test("the default configuration listens on loopback only and needs no token")
    func defaults() {
        let config = SchedulerConfig()
        #expect(config.api.hostAndPort.host == "127.0.0.1")
        #expect(config.api.token.isEmpty)
    }

    @Test("[api] token is read from the config file; TASK_SCHEDULER_API_TOKEN, when set and not empty, wins", arguments: [
        (environment: [String: String](), expected: "abc"),
        (environment: [APISection.tokenVariable: "from-env"], expected: "from-env"),
        (environment: [APISection.tokenVariable: ""], expected: "abc"),
    ])
    func tokenFromConfig(environment: [String: String], expected: String) throws {
        let config = try ConfigLoader.parse("[api]\ntoken = \"abc\"\n", file: "t.toml", environment: environment)
        #expect(config.api.token == expected)
    }

    @Test("with no config file, TASK_SCHEDULER_API_TOKEN still sets the token")
    func tokenWithoutConfigFile() throws {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("no-config-\(UUID().uuidString).toml").path
        #expect(try ConfigLoader.load(path: nil, orIfPresent: missing, environment: [APISection.tokenVariable: "env-only"]).api.token == "env-only")
        #expect(try ConfigLoader.load(path: nil, orIfPresent: missing, environment: [:]).api.token.isEmpty)
    }
}

@Suite("HTTP fuzz", .sharesMachine)
struct APIFuzzTests {
    /// Deterministic pseudo-random bytes (a failing case can be replayed).
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 11
        }
        mutating func int(_ range: Range<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
        mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) } }
    }

    static func body(_ generator: inout Generator) -> (path: String, method: HTTPRequest.Method, contentType: String, body: [UInt8]) {
        let hostile: [String] = [
            "{", "}", "[]", "null", "true", "\"Success\"", "{\"topic\": null}", "{\"topic\": \"\\u0000\", \"message\": \"x\"}",
            "{\"topic\": \"E\", \"message\": 1e400}", "{\"topic\": \"E\", \"message\": \"x\", \"headers\": {\"a\": {\"b\": 1}}}",
            String(repeating: "[", count: 5000), String(repeating: "{\"a\":", count: 3000),
            "{\"topic\": \"" + String(repeating: "t", count: 300) + "\", \"message\": \"x\"}",
            "{\"topic\": \"E\", \"message\": \"x\", \"key\": []}", "{\"topic\": [\"E\"], \"message\": \"x\"}",
        ]
        let paths = ["/tasks/generate", "/tasks/generate", "/tasks/generate", "/tasks", "/nope", "/tasks/generate/../../etc/passwd", "/%00", "/scripts"]
        let methods: [HTTPRequest.Method] = [.post, .post, .post, .put, .delete, .patch, .get]
        let types = ["application/json", "application/json", "text/xml", "multipart/form-data", "", "application/json; charset=utf-16"]
        var body: [UInt8]
        switch generator.int(0..<4) {
        case 0: body = generator.bytes(generator.int(0..<512))  // random bytes, NULs, invalid UTF-8
        case 1: body = Array(hostile[generator.int(0..<hostile.count)].utf8)
        case 2:
            var text = Array(hostile[generator.int(0..<hostile.count)].utf8)
            if !text.isEmpty { text[generator.int(0..<text.count)] = UInt8(truncatingIfNeeded: generator.next()) }
            body = text
        default: body = Array("{\"topic\": \"\(generator.int(0..<2) == 0 ? "bad topic" : "..")\", \"message\": 5}".utf8)
        }
        return (paths[generator.int(0..<paths.count)], methods[generator.int(0..<methods.count)], types[generator.int(0..<types.count)], body)
    }

    @Test("a few thousand hostile requests: every answer is a 4xx with a JSON error, never a 5xx")
    func fuzz() async throws {
        var config = testConfig()
        config.api.maxBodyBytes = 64 * 1024
        try await withApplication(config) { client in
            var generator = Generator(state: 0x5EED)
            var statuses: [Int: Int] = [:]
            for round in 0..<2500 {
                let request = Self.body(&generator)
                var headers: HTTPFields = [:]
                if !request.contentType.isEmpty { headers[.contentType] = request.contentType }
                let response = try await client.execute(uri: request.path, method: request.method, headers: headers, body: ByteBuffer(bytes: request.body))
                let code = Int(response.status.code)
                statuses[code, default: 0] += 1
                // Reads of real endpoints succeed, and so do a mutation that
                // happens to be a valid task and DELETE /tasks (empties the
                // pool); everything else is a JSON 4xx.
                let emptied = request.method == .delete && request.path == "/tasks" && String(buffer: response.body).hasPrefix(#"{"removed":"#)
                if code == 200 && (request.method == .get || emptied || String(buffer: response.body) == "\"Success\"") { continue }
                #expect((400..<500).contains(code), "round \(round): \(request.method) \(request.path) -> \(response.status)")
                #expect(errorText(response) != nil, "round \(round): body \(String(buffer: response.body).prefix(200))")
            }
            // Oversized bodies: 413.
            let big = try await client.execute(uri: "/tasks/generate", method: .post, headers: [.contentType: "application/json"],
                                               body: ByteBuffer(repeating: UInt8(ascii: "a"), count: 200 * 1024))
            #expect(big.status == .contentTooLarge)
            print("fuzz status counts: \(statuses.sorted { $0.key < $1.key })")
        }
    }
}
