import Foundation
import Testing
@testable import Scheduler

/// `msg` tables are lazy (fields read from the message on first use) and
/// made per message; these tests fail if one message's fields show through
/// another's `msg`, fresh or kept past its call.
@Suite("msg does not leak between messages", .sharesMachine)
struct MessageLeakTests {
    /// Message `index` of the input: keys absent, text or binary; payloads
    /// binary, empty, null or text; headers absent or binary, null, text.
    static func input(_ index: Int) -> OutgoingMessage {
        let key: [UInt8]? = switch index % 4 {
        case 0: nil
        case 1: [0xFF, 0x00, UInt8(index % 256)]
        default: Array("k\(index % 7)".utf8)
        }
        let value: [UInt8]? = switch index % 5 {
        case 0: [0x00, 0xFF, 0xFE, UInt8(index % 256), 0x00]
        case 1: []
        case 2: nil
        default: Array("p\(index)".utf8)
        }
        let headers = index % 3 == 0 ? [] : [
            KafkaHeader(name: "bin", bytes: [0x00, 0xFF, UInt8(index % 256)]), KafkaHeader(name: "null", bytes: nil),
            KafkaHeader("h\(index % 2)", "v\(index)"),
        ]
        var message = OutgoingMessage(topic: "", key: key, value: value ?? [], headers: headers)
        message.isTombstone = value == nil
        return message
    }

    /// What the script reports for message `index`: `<offset>|<key hex or
    /// nil>|<payload hex>|<headers, sorted: name=hex or null>`.
    static func expected(_ index: Int) -> String {
        let message = input(index)
        func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
        let headers = message.headers.sorted { $0.name < $1.name }.map { "\($0.name)=\($0.value.map(hex) ?? "null")" }
        return "\(index)|\(message.key.map(hex) ?? "nil")|\(hex(message.isTombstone ? [] : message.value))|\(headers.joined(separator: ","))"
    }

    /// Reports each message's fields, read in an order that changes with the
    /// offset (some read the key first, some last, some never read the
    /// timestamp), keeps every 7th `msg` and checks on every later message
    /// that each kept one still shows exactly what it showed during its own
    /// call, that a field it did not read then raises instead of showing
    /// another message's value, and that `pairs` lists a fresh msg's fields.
    static func script(output: String, batch: Bool) -> String {
        """
        local kept = {}
        local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
        local function headers_text(h)
          local names = {}
          for name in pairs(h) do names[#names + 1] = name end
          table.sort(names)
          local parts = {}
          for _, name in ipairs(names) do parts[#parts + 1] = name .. "=" .. (h[name] == false and "null" or hex(h[name])) end
          return table.concat(parts, ",")
        end
        local function key_text(key) if key == nil then return "nil" end return hex(key) end
        local function describe(msg)
          local n = msg.offset
          if n % 2 == 0 then
            local key = key_text(msg.key)
            local payload = hex(msg.payload)
            return n .. "|" .. key .. "|" .. payload .. "|" .. headers_text(msg.headers)
          end
          local headers = headers_text(msg.headers)
          local payload = hex(msg.payload)
          return n .. "|" .. key_text(msg.key) .. "|" .. payload .. "|" .. headers
        end
        local call = 0  -- the call running: msgs of earlier calls are kept past theirs
        local function check_kept()
          for _, k in ipairs(kept) do
            if k.call == call then break end
            local now = describe(k.msg)
            if now ~= k.desc then error("kept msg changed: " .. k.desc .. " became " .. now) end
            local ok, err = pcall(function() return k.msg.timestamp end)
            if ok then error("a kept msg read a field it had not read during its call: " .. tostring(err)) end
            if not tostring(err):find("was not read during the call", 1, true) then error("unexpected error: " .. tostring(err)) end
          end
        end
        local function one(msg)
          check_kept()
          if msg.offset % 5 == 3 and msg.offset % 7 ~= 0 then
            local fields = {}
            for name in pairs(msg) do fields[name] = true end
            for _, name in ipairs({"topic", "partition", "offset", "payload", "timestamp", "headers", "group", "worker"}) do
              if not fields[name] then error("pairs(msg) does not list " .. name) end
            end
            if (fields.key == true) ~= (msg.key ~= nil) then error("pairs(msg) lists key iff the message has one") end
          end
          local desc = describe(msg)
          if msg.offset % 7 == 0 then kept[#kept + 1] = {msg = msg, desc = desc, call = call} end
          scheduler.emit("\(output)", desc, msg.key)
        end
        function process(msg) call = call + 1; one(msg) end
        """ + (batch ? "\nfunction process_batch(msgs) call = call + 1; for _, msg in ipairs(msgs) do one(msg) end end\n" : "")
    }

    @Test("every msg shows its own key, payload and headers (nil, binary, empty); a kept msg keeps what it read and never shows a later message's fields",
          .timeLimit(.minutes(2)), arguments: [false, true])
    func noLeak(batch: Bool) async throws {
        let topic = try TestBroker.freshTopic("msg-leak-in", partitions: 1)
        let output = try TestBroker.freshTopic("msg-leak-out", partitions: 1)
        let total = 700  // several batches of at most 256: message positions are reused
        let producer = try KafkaProducer.make(bootstrapServers: TestBroker.shared.bootstrapServers, deliveryTimeoutMs: 10_000)
        var deliveries: [PendingDelivery] = []
        for index in 0..<total {
            var message = Self.input(index)
            message.topic = topic
            deliveries.append(producer.enqueue(message))
        }
        for delivery in deliveries { _ = try await delivery.report() }
        await producer.close(timeoutMs: 5000)
        let capture = LogCapture()
        var config = poolConfig(topics: [topic], workers: 1, sliceMs: 50)
        config.groups[0].maxAttempts = 1
        // The script checks every kept msg at each call: on a loaded machine
        // a batch of those checks can pass the default 5 s, which is not
        // what this test is about.
        config.scripts.maxCallMs = 60_000
        let scripts = try makeScripts(["generate.lua": idleGenerate, "process.lua": Self.script(output: output, batch: batch)])
        let emitted = try await withPool(config, scripts: scripts, logger: capture.logger) {
            var emitted: [ConsumedMessage] = []
            await eventually(timeout: .seconds(60)) {
                emitted = (try? await readAll(topic: output, partitions: 1, count: total, timeout: .seconds(1))) ?? []
                return emitted.count >= total || capture.all.contains { $0.message.contains("dead-lettered") }
            }
            return emitted
        }
        let failures = capture.all.filter { $0.message.contains("process") && $0.message.contains("failed") }.map(\.message)
        #expect(failures.isEmpty, "no call failed: \(failures.prefix(2))")
        let reported = emitted.map { $0.value.utf8String }
        let wrong = zip(reported, (0..<total).map(Self.expected)).filter { $0 != $1 }
        #expect(reported.count == total && wrong.isEmpty, "\(reported.count) of \(total) reported; first wrong (got, expected): \(wrong.prefix(3))")
        let wrongKeys = emitted.enumerated().filter { $0.element.key != Self.input($0.offset).key }.map(\.offset)
        #expect(wrongKeys.isEmpty, "each emit carries its own message's key (nil stays nil); wrong at \(wrongKeys.prefix(5))")
    }
}
