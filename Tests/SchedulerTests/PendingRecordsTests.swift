import Testing
@testable import Scheduler

/// `[scripts] max_pending_records` / `max_pending_record_mb`: what scripts
/// wrote outside `process()` and the broker has not acknowledged yet.
@Suite("Script records waiting for the broker", .sharesMachine)
struct PendingRecordsTests {
    @Test("the rules: a bound on records and on bytes (one record larger than the byte bound goes alone); settled records make room", arguments: [
        // records waiting (of 100 bytes each), a new one's bytes, refused with
        (0, 100, nil),
        (2, 100, nil),
        (3, 100, "[scripts] max_pending_records"),
        (0, 5000, nil),                                // alone, larger than 1000 bytes
        (1, 900, nil),                                 // 100 + 900: exactly at the bound
        (1, 901, "[scripts] max_pending_record_mb"),
    ] as [(Int, Int, String?)])
    func rules(waiting: Int, bytes: Int, refusal: String?) {
        var pending = PendingRecords(maxRecords: 3, maxBytes: 1000)
        for _ in 0..<waiting { #expect(pending.admit(bytes: 100, creates: true) == nil) }
        let answer = pending.admit(bytes: bytes, creates: false)
        if let refusal {
            #expect(answer?.contains(refusal) == true, "\(answer ?? "admitted")")
            #expect(pending.records == waiting && pending.bytes == waiting * 100, "a refusal counts nothing")
        } else {
            #expect(answer == nil)
            #expect(pending.records == waiting + 1)
        }
        #expect(pending.creations == waiting)
    }

    @Test("settling gives back the record, its bytes and its creation")
    func settle() {
        var pending = PendingRecords(maxRecords: 1, maxBytes: 1000)
        #expect(pending.admit(bytes: 10, creates: true) == nil)
        #expect(pending.admit(bytes: 10, creates: true) != nil)
        pending.settle(bytes: 10, creates: true)
        #expect(pending == PendingRecords(maxRecords: 1, maxBytes: 1000))
        #expect(pending.admit(bytes: 10, creates: false) == nil)
    }

    @Test("config: the keys are read and checked, errors name the key")
    func config() throws {
        let config = try ConfigLoader.parse("""
            [scripts]
            max_pending_records = 7
            max_pending_record_mb = 3
            [[groups]]
            name = "g"
            topics = ["t"]
            max_inflight_emit_mb = 5
            """, file: "test.toml")
        #expect(config.scripts.maxPendingRecords == 7)
        #expect(config.scripts.maxPendingRecordMB == 3)
        #expect(config.groups[0].maxInflightEmitMB == 5)
        #expect(PendingRecords(config.scripts).maxBytes == 3 * 1024 * 1024)
        for (text, key) in [("[scripts]\nmax_pending_records = 0", "scripts.max_pending_records"),
                            ("[scripts]\nmax_pending_record_mb = -1", "scripts.max_pending_record_mb"),
                            ("[[groups]]\nname = \"g\"\ntopics = [\"t\"]\nmax_inflight_emit_mb = 0", "max_inflight_emit_mb")] {
            #expect { try ConfigLoader.parse(text, file: "test.toml") } throws: { "\($0)".contains(key) }
        }
    }
}
