import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing
@testable import Scheduler

/// A ledger record at `atMs` (claimed unless said otherwise).
private func record(_ offset: Int64, _ state: RedriveRecord.State = .claimed, job: String, at atMs: Int64) -> RedriveRecord {
    // The target's ends at a claim: the claim's second, as an offset.
    RedriveRecord(topic: "X.dlq", partition: 0, offsets: [[offset, offset]], state: state, job: job, at_ms: atMs,
                  target_from: state == .claimed ? [atMs / 1000, 7] : nil)
}

private let marker = RedriveMarker(topic: "X.dlq", partition: 0, offset: 1)

@Suite("Dead-letter redrive: the ledger's rules and the redriven message", .sharesMachine)
struct RedriveRulesTests {
    /// A history of the ledger, what a job `me` does before claiming at 100 s,
    /// and once its claim (written at 100 s) is in the ledger. A claim at
    /// `t` s found the target's ends at `[t, 7]`.
    struct Case: Sendable, CustomTestStringConvertible {
        let text: String
        let history: [RedriveRecord]
        let before: RedriveStep
        let after: RedriveStep
        var testDescription: String { text }
    }

    @Test("who publishes a dead letter", arguments: [
        Case(text: "never claimed: claim it, then publish", history: [], before: .claim, after: .publish),
        Case(text: "done by an earlier redrive: nothing to do", history: [record(1, .done, job: "a", at: 10_000)],
             before: .alreadyMoved, after: .alreadyMoved),
        Case(text: "claimed a moment ago by a running redrive: left to it", history: [record(1, job: "a", at: 99_000)],
             before: .busyElsewhere, after: .busyElsewhere),
        Case(text: "claimed by a redrive that died (older than stale_after): search the target from its claim",
             history: [record(1, job: "a", at: 50_000)], before: .claim, after: .searchTarget(from: [50, 7])),
        Case(text: "released after a failed publish: claim it, then publish",
             history: [record(1, job: "a", at: 99_000), record(1, .released, job: "a", at: 99_500)], before: .claim, after: .publish),
        Case(text: "two dead claimers in turn: search from the first",
             history: [record(1, job: "a", at: 10_000), record(1, job: "b", at: 50_000)], before: .claim, after: .searchTarget(from: [10, 7])),
        Case(text: "a taker-over that released after a failed publish: the first claimer may have published, search still",
             history: [record(1, job: "a", at: 10_000), record(1, job: "b", at: 50_000), record(1, .released, job: "b", at: 50_100)],
             before: .claim, after: .searchTarget(from: [10, 7])),
        Case(text: "a release by a job that does not hold the claim changes nothing",
             history: [record(1, job: "a", at: 99_000), record(1, .released, job: "b", at: 99_100)], before: .busyElsewhere, after: .busyElsewhere),
        Case(text: "done is final, whatever comes after",
             history: [record(1, .done, job: "a", at: 10_000), record(1, job: "b", at: 90_000)], before: .alreadyMoved, after: .alreadyMoved),
    ])
    func ledger(_ rule: Case) {
        var ledger = RedriveLedger(staleAfterMs: 15_000)
        rule.history.forEach { ledger.apply($0) }
        #expect(ledger.beforeClaim(marker, nowMs: 100_000) == rule.before)
        ledger.apply(record(1, job: "me", at: 100_000))
        #expect(ledger.afterClaim(marker, job: "me") == rule.after)
    }

    @Test("of two redrives claiming at once, the first claim in the ledger publishes")
    func firstClaimWins() {
        var ledger = RedriveLedger(staleAfterMs: 15_000)
        ledger.apply(record(1, job: "a", at: 100_000))
        ledger.apply(record(1, job: "b", at: 100_001))
        #expect(ledger.afterClaim(marker, job: "a") == .publish)
        #expect(ledger.afterClaim(marker, job: "b") == .busyElsewhere)
    }

    @Test("a ledger record names dead letters of one partition as offset ranges, one record per partition and target")
    func rangeRecords() {
        #expect(RedriveRecord.ranges([7, 3, 4, 5, 9, 10]) == [[3, 5], [7, 7], [9, 10]])
        let markers = [("A", 0, 1), ("A", 0, 2), ("A", 1, 5), ("A", 0, 4)].map { RedriveMarker(topic: $0.0, partition: Int32($0.1), offset: Int64($0.2)) }
        let records = RedriveRecord.records(markers, state: .claimed, job: "j", atMs: 1) { $0.offset == 4 ? [9] : [8] }
        #expect(records.map(\.offsets) == [[[1, 2]], [[4, 4]], [[5, 5]]])
        #expect(records.map(\.target_from) == [[8], [9], [8]])
        #expect(records.flatMap(\.markers).sorted() == markers.sorted())
        #expect(RedriveRecord(topic: "A", partition: 0, offsets: [[5, 2], [1]], state: .done, job: "j", at_ms: 1).markers.isEmpty,
                "malformed ranges name nothing")
    }

    @Test("a dead letter goes back as it first was: dlq.* headers dropped, marked and counted")
    func redrivenMessage() throws {
        let dead = ConsumedMessage(topic: "orders.dlq", partition: 2, offset: 41, key: Array("k1".utf8), value: [0, 1, 255],
                                   headers: [KafkaHeader("trace", "t-1"), KafkaHeader(name: "empty", bytes: nil),
                                             KafkaHeader("dlq.error", "boom"), KafkaHeader("dlq.topic", "orders"),
                                             KafkaHeader("dlq.offset", "7")], timestampMs: 0)
        let once = try #require(Redriven.message(dead))
        #expect(once.topic == "orders")
        #expect(once.key == Array("k1".utf8))
        #expect(once.value == [0, 1, 255])
        #expect(once.headers == [KafkaHeader("trace", "t-1"), KafkaHeader(name: "empty", bytes: nil),
                                 KafkaHeader("x-redrive-of", "orders.dlq/2/41"), KafkaHeader("x-redrive-count", "1")])
        // Failed again, dead-lettered again (its headers copied), redriven again.
        let again = ConsumedMessage(topic: "orders.dlq", partition: 0, offset: 90, key: once.key, value: once.value,
                                    headers: once.headers + [KafkaHeader("dlq.topic", "orders")], timestampMs: 0)
        let twice = try #require(Redriven.message(again))
        #expect(twice.headers.filter { $0.name.hasPrefix("x-redrive") } == [KafkaHeader("x-redrive-of", "orders.dlq/0/90"),
                                                                                KafkaHeader("x-redrive-count", "2")])
        let nowhere = ConsumedMessage(topic: "orders.dlq", partition: 0, offset: 1, key: nil, value: [], headers: [], timestampMs: 0)
        #expect(Redriven.message(nowhere) == nil)
        #expect(RedriveMarker("orders.dlq/2/41") == RedriveMarker(topic: "orders.dlq", partition: 2, offset: 41))
        #expect(RedriveMarker("orders.dlq/x/41") == nil)
    }

    @Test("a filter with a bad field is refused, naming it", arguments: [
        (#"{"partition": -1}"#, "'partition' must be a whole number"),
        (#"{"from_offset": 5, "to_offset": 2}"#, "'from_offset' (5) is after 'to_offset' (2)"),
        (#"{"error_contains": ""}"#, "'error_contains' must be a non-empty string"),
        (#"{"offset": 3}"#, "unknown field(s): 'offset'"),
        (#"[1]"#, "must be empty or a JSON object"),
        (#"{"to_offset": true}"#, "'to_offset' must be a whole number"),
    ])
    func badFilter(_ body: String, _ expected: String) {
        #expect { try RedriveRequest.parse(Data(body.utf8)) } throws: { ($0 as? APIError)?.message.contains(expected) == true }
    }

    @Test("a filter takes partitions, an offset range and an error text")
    func filter() throws {
        let filter = try RedriveRequest.parse(Data(#"{"partition": 1, "from_offset": 3, "to_offset": 5, "error_contains": "timeout"}"#.utf8))
        func dead(_ offset: Int64, _ error: String) -> ConsumedMessage {
            ConsumedMessage(topic: "t", partition: 1, offset: offset, key: nil, value: [], headers: [KafkaHeader("dlq.error", error)], timestampMs: 0)
        }
        #expect(filter.takes(partition: 1) && !filter.takes(partition: 0))
        #expect(filter.takes(dead(3, "a timeout")) && filter.takes(dead(5, "timeout")))
        #expect(!filter.takes(dead(2, "timeout")) && !filter.takes(dead(6, "timeout")) && !filter.takes(dead(4, "refused")))
        #expect(try RedriveRequest.parse(Data()) == RedriveFilter())
    }
}

@Suite("Dead-letter redrive against the broker", .serialized, .runsAlone, .timeLimit(.minutes(5)))
struct RedriveTests {
    @Test("after the script is fixed every dead letter is processed once; a second redrive moves nothing", .timeLimit(.minutes(3)))
    func fixAndRedrive() async throws {
        let topic = try TestBroker.freshTopic("redrive-in", partitions: 2)
        let out = try TestBroker.freshTopic("redrive-out", partitions: 1)
        let broken = """
            function process(msg)
              if msg.payload:sub(1, 3) == "bad" then error("cannot handle " .. msg.payload) end
              scheduler.emit("\(out)", msg.payload)
            end
            """
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": broken])
        var config = poolConfig(topics: [topic], workers: 2, sliceMs: 10)
        config.groups[0].maxAttempts = 1
        config.groups[0].retryBackoffMs = 0
        let app = try await buildApplication(LaunchOptions(config: config, scriptsDirectory: scripts, logger: quietLogger))
        try await app.test(.live) { client in
            let payloads = (0..<40).map { $0 % 4 == 0 ? "good-\($0)" : "bad-\($0)" }
            for (index, payload) in payloads.enumerated() {
                #expect(try await post(client, #"{"topic": "\#(topic)", "message": "\#(payload)", "key": "k\#(index % 5)"}"#).status == .ok)
            }
            let dlqCount = try await eventually(timeout: .seconds(60)) {
                let response = try await client.execute(uri: "/dlq", method: .get)
                let object = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                let entry = (object?["topics"] as? [[String: Any]])?.first { $0["topic"] as? String == "\(topic).dlq" }
                return entry?["messages"] as? Int == 30
            }
            #expect(dlqCount)
            // The fix: nothing fails any more.
            try broken.replacingOccurrences(of: #"== "bad""#, with: #"== "none""#)
                .write(toFile: scripts + "/process.lua", atomically: true, encoding: .utf8)
            #expect(try await client.execute(uri: "/scripts/reload", method: .post).status == .ok)

            let first = try await redrive(client, "\(topic).dlq")
            #expect(first?["moved"] as? Int == 30, "\(String(describing: first))")
            let processed = try await readAll(topic: out, partitions: 1, count: 41, timeout: .seconds(30))
            let counts = Dictionary(processed.map { (String(decoding: $0.value, as: UTF8.self), 1) }, uniquingKeysWith: +)
            #expect(Set(counts.keys) == Set(payloads), "missing: \(Set(payloads).subtracting(counts.keys).sorted())")
            #expect(counts.values.allSatisfy { $0 == 1 }, "processed twice: \(counts.filter { $0.value > 1 }.keys.sorted())")

            let second = try await redrive(client, "\(topic).dlq")
            #expect(second?["moved"] as? Int == 0 && second?["already_moved"] as? Int == 30, "\(String(describing: second))")

            let unknown = try await client.execute(uri: "/dlq/\(topic)/redrive", method: .post)
            #expect(unknown.status == .notFound)
            #expect(String(buffer: unknown.body).contains("is not the dead-letter topic of a configured group"))
        }
    }

    @Test("an interrupted redrive: what the dead job published is found, not published again; the rest is moved once",
          .timeLimit(.minutes(2)))
    func interrupted() async throws {
        let source = try TestBroker.freshTopic("redrive-src", partitions: 2)
        let dlq = try TestBroker.freshTopic("redrive-src-dlq", partitions: 1)
        let ledger = try TestBroker.freshTopic("redrive-ledger", partitions: 1)
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 5000)
        for index in 0..<10 {
            _ = try await producer.send(OutgoingMessage(topic: dlq, key: Array("k\(index % 3)".utf8), value: Array("m\(index)".utf8),
                                                        headers: [KafkaHeader("dlq.topic", source), KafkaHeader("dlq.error", "boom")]))
        }
        // As a redrive killed mid-batch leaves it: claims of 0-5, stale by
        // now; 0-2 published, no done record. A live redrive claimed 9.
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let encoder = JSONEncoder()
        func write(_ record: RedriveRecord) async throws {
            _ = try await producer.send(OutgoingMessage(topic: ledger, key: nil, value: Array(try encoder.encode(record)), headers: [], partition: 0))
        }
        try await write(RedriveRecord(topic: dlq, partition: 0, offsets: [[0, 5]], state: .claimed, job: "dead", at_ms: now - 20_000,
                                      target_from: [0, 0]))
        try await write(RedriveRecord(topic: dlq, partition: 0, offsets: [[9, 9]], state: .claimed, job: "alive", at_ms: now))
        for offset in 0..<3 {
            _ = try await producer.send(OutgoingMessage(topic: source, key: Array("k\(offset % 3)".utf8), value: Array("m\(offset)".utf8),
                                                        headers: [KafkaHeader("x-redrive-of", "\(dlq)/0/\(offset)")]))
        }
        let redriver = Redriver(bootstrapServers: TestBroker.shared.bootstrapServers, properties: [:], producer: producer,
                                ledgerTopic: ledger, timeoutMs: 5000, logger: quietLogger)
        let result = try await redriver.redrive(dlq, filter: RedriveFilter())
        #expect(result.found_moved == 3 && result.moved == 6 && result.busy_elsewhere == 1 && result.error == nil, "\(result)")
        let markers = try await readAll(topic: source, partitions: 2, count: 10, timeout: .seconds(5))
            .compactMap { $0.headers.last { $0.name == "x-redrive-of" }?.text }
        #expect(markers.sorted() == (0..<9).map { "\(dlq)/0/\($0)" }.sorted(), "each of 0-8 once, 9 left to its claimer")
        await producer.close(timeoutMs: 5000)
    }
}

@Suite("Dead-letter redrive without brokers", .sharesMachine)
struct RedriveOutageTests {
    @Test("unreachable brokers fail the redrive with the reason; they are not an empty topic", .timeLimit(.minutes(1)))
    func unreachable() async throws {
        let producer = try KafkaProducer.make(bootstrapServers: "127.0.0.1:1", deliveryTimeoutMs: 1000)
        let redriver = Redriver(bootstrapServers: "127.0.0.1:1", properties: [:], producer: producer,
                                ledgerTopic: "ledger", timeoutMs: 500, logger: quietLogger)
        await #expect(throws: KafkaError.self) { try await redriver.redrive("orders.dlq", filter: RedriveFilter()) }
        await producer.close(timeoutMs: 100)
    }
}

private func redrive(_ client: some TestClientProtocol, _ topic: String) async throws -> [String: Any]? {
    let response = try await client.execute(uri: "/dlq/\(topic)/redrive", method: .post)
    #expect(response.status == .ok, "\(String(buffer: response.body))")
    return try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
}
