import Foundation

/// Which dead letter a redriven message is: `<dead-letter topic>/<partition>/<offset>`,
/// carried in the `x-redrive-of` header and used as the ledger's key.
struct RedriveMarker: Hashable, Sendable, Comparable, CustomStringConvertible {
    var topic: String
    var partition: Int32
    var offset: Int64

    var description: String { "\(topic)/\(partition)/\(offset)" }

    init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }

    /// Parses `description`'s form; the topic may itself contain `/`-free
    /// Kafka names only, so the last two fields are the numbers.
    init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, let partition = Int32(parts[1]), let offset = Int64(parts[2]) else { return nil }
        self.init(topic: String(parts[0]), partition: partition, offset: offset)
    }

    static func < (a: Self, b: Self) -> Bool { (a.topic, a.partition, a.offset) < (b.topic, b.partition, b.offset) }
}

/// Builds the message a dead letter is redriven as.
enum Redriven {
    /// Header naming the dead letter a message was redriven from.
    static let ofHeader = "x-redrive-of"
    /// Header counting how many times a message was redriven.
    static let countHeader = "x-redrive-count"

    /// The dead letter as it first was (topic from `dlq.topic`, same key,
    /// payload and headers), its `dlq.*` headers dropped and the redrive
    /// headers set; nil when it names no source topic.
    static func message(_ dead: ConsumedMessage) -> OutgoingMessage? {
        guard let source = dead.headers.last(where: { $0.name == DeadLetter.Header.topic })?.text, !source.isEmpty else { return nil }
        let count = dead.headers.last { $0.name == countHeader }?.text.flatMap(Int.init) ?? 0
        var headers = dead.headers.filter { !$0.name.hasPrefix("dlq.") && $0.name != ofHeader && $0.name != countHeader }
        headers.append(KafkaHeader(ofHeader, RedriveMarker(topic: dead.topic, partition: dead.partition, offset: dead.offset).description))
        headers.append(KafkaHeader(countHeader, String(count + 1)))
        return OutgoingMessage(topic: source, key: dead.key, value: dead.value, headers: headers)
    }
}

/// Which dead letters a redrive takes (`POST /dlq/<topic>/redrive`'s body).
struct RedriveFilter: Sendable, Equatable {
    var partition: Int32?
    /// First and last offset taken (inclusive), in every partition taken.
    var fromOffset: Int64?
    var toOffset: Int64?
    /// Only dead letters whose `dlq.error` contains this text.
    var errorContains: String?

    func takes(partition: Int32) -> Bool { self.partition.map { $0 == partition } ?? true }

    func takes(_ dead: ConsumedMessage) -> Bool {
        if let fromOffset, dead.offset < fromOffset { return false }
        if let toOffset, dead.offset > toOffset { return false }
        if let errorContains {
            let error = dead.headers.last { $0.name == DeadLetter.Header.error }?.text ?? ""
            if !error.contains(errorContains) { return false }
        }
        return true
    }
}

/// One record of the redrive ledger (a one-partition topic): a job claims
/// dead letters before publishing them, and marks them done (or releases
/// them) after the broker answered. One record names many dead letters of one
/// partition as offset ranges, so the ledger stays small (a broker's retention
/// or the embedded broker's 5 MB per partition must not drop its records).
struct RedriveRecord: Codable, Sendable, Equatable {
    enum State: String, Codable, Sendable { case claimed, done, released }
    /// The dead-letter topic and partition.
    var topic: String
    var partition: Int32
    /// Inclusive ranges `[first, last]` of dead-letter offsets.
    var offsets: [[Int64]]
    var state: State
    var job: String
    var at_ms: Int64
    /// For `claimed`: the end offset of each partition of the target topic
    /// before the claim (nothing its job published can be before them).
    var target_from: [Int64]?

    /// The dead letters it names.
    var markers: [RedriveMarker] {
        offsets.flatMap { range -> [RedriveMarker] in
            guard range.count == 2, range[0] <= range[1], range[1] - range[0] < 1_000_000 else { return [] }
            return (range[0]...range[1]).map { RedriveMarker(topic: topic, partition: partition, offset: $0) }
        }
    }

    /// One record per partition for `markers`, their offsets as ranges.
    static func records(_ markers: [RedriveMarker], state: State, job: String, atMs: Int64,
                        targetFrom: (RedriveMarker) -> [Int64]? = { _ in nil }) -> [RedriveRecord] {
        let byPartition = Dictionary(grouping: markers) { PartitionKey(topic: $0.topic, partition: $0.partition) }
        return byPartition.keys.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }.flatMap { key -> [RedriveRecord] in
            let group = byPartition[key]!.sorted()
            // Dead letters of one batch with different targets get a record each.
            let byTarget = Dictionary(grouping: group) { targetFrom($0) ?? [] }
            return byTarget.keys.sorted { $0.lexicographicallyPrecedes($1) }.map { target in
                RedriveRecord(topic: key.topic, partition: key.partition, offsets: ranges(byTarget[target]!.map(\.offset)),
                              state: state, job: job, at_ms: atMs, target_from: state == .claimed ? target : nil)
            }
        }
    }

    /// Sorted offsets as inclusive ranges.
    static func ranges(_ offsets: [Int64]) -> [[Int64]] {
        var ranges: [[Int64]] = []
        for offset in offsets.sorted() {
            if let last = ranges.last, last[1] + 1 == offset { ranges[ranges.count - 1][1] = offset } else { ranges.append([offset, offset]) }
        }
        return ranges
    }

    private struct PartitionKey: Hashable { let topic: String; let partition: Int32 }
}

/// What the ledger says of each dead letter, folded in log order. The
/// ledger's single partition orders every job's claims: of two jobs claiming
/// the same dead letter, the first claim wins, unless it was older than
/// `staleAfter` (its job died or gave up) when the second was written.
struct RedriveLedger: Sendable {
    enum Entry: Sendable, Equatable {
        /// Claimed by `job` at `atMs` (the target's ends then: `targetFrom`);
        /// `since`: where the target must be searched from, when a stale
        /// claim was taken over (its job may have published the message).
        case claimed(job: String, atMs: Int64, targetFrom: [Int64], since: [Int64]?)
        case done
    }

    let staleAfterMs: Int64
    private(set) var entries: [RedriveMarker: Entry] = [:]

    init(staleAfterMs: Int64) { self.staleAfterMs = staleAfterMs }

    mutating func apply(_ record: RedriveRecord) {
        for marker in record.markers { apply(record, to: marker) }
    }

    private mutating func apply(_ record: RedriveRecord, to marker: RedriveMarker) {
        switch (record.state, entries[marker]) {
        case (_, .done?):
            return
        case (.done, _):
            entries[marker] = .done
        case (.claimed, nil):
            entries[marker] = .claimed(job: record.job, atMs: record.at_ms, targetFrom: record.target_from ?? [], since: nil)
        case (.claimed, .claimed(let job, let atMs, let targetFrom, let since)?):
            guard job != record.job else { return }
            // A fresh claim stands; a stale one is taken over, remembering
            // where in the target its job may have published the message.
            if record.at_ms - atMs > staleAfterMs {
                entries[marker] = .claimed(job: record.job, atMs: record.at_ms, targetFrom: record.target_from ?? [],
                                           since: since ?? targetFrom)
            }
        case (.released, .claimed(let job, _, _, let since)?):
            // A release is final only if nothing may have been published
            // before it by a stale claimer.
            guard job == record.job else { return }
            entries[marker] = since == nil ? nil : .claimed(job: "", atMs: 0, targetFrom: [], since: since)
        case (.released, nil):
            return
        }
    }

    /// What a job should do with `marker` before claiming it.
    func beforeClaim(_ marker: RedriveMarker, nowMs: Int64) -> RedriveStep {
        switch entries[marker] {
        case nil: .claim
        case .done?: .alreadyMoved
        case .claimed(_, let atMs, _, _)? where nowMs - atMs <= staleAfterMs: .busyElsewhere
        case .claimed?: .claim
        }
    }

    /// What `job` should do with `marker` once its claim is in the ledger.
    func afterClaim(_ marker: RedriveMarker, job: String) -> RedriveStep {
        switch entries[marker] {
        case nil: return .busyElsewhere // released by its claimer: taken next time
        case .done?: return .alreadyMoved
        case .claimed(let holder, _, _, let since)?:
            guard holder == job else { return .busyElsewhere }
            return since.map { .searchTarget(from: $0) } ?? .publish
        }
    }
}

/// One step of a redrive for one dead letter.
enum RedriveStep: Sendable, Equatable {
    case claim, publish, alreadyMoved, busyElsewhere
    /// A job that died may have published it: look for its marker in the
    /// target from these offsets (per partition; missing ones from their
    /// start) before publishing.
    case searchTarget(from: [Int64])
}

/// The answer of one redrive.
public struct RedriveResult: Sendable, Codable, Equatable {
    /// The dead-letter topic.
    public var topic: String
    /// Dead letters published back to their topic by this redrive.
    public var moved = 0
    /// Dead letters a redrive before this one had already moved.
    public var already_moved = 0
    /// Found in the target topic: moved by a redrive that was interrupted.
    public var found_moved = 0
    /// Claimed by a redrive still running (or interrupted less than
    /// `stale_after_ms` ago): not moved now; run the redrive again later.
    public var busy_elsewhere = 0
    /// Not taken: outside the filter.
    public var filtered_out = 0
    /// Without a `dlq.topic` header: nowhere to send them.
    public var no_source = 0
    /// Publishing failed: a later redrive takes them (at once if they
    /// surely were not written, else once `stale_after_ms` passed, after
    /// searching the target).
    public var failed = 0
    /// The end offsets the redrive stopped at (per partition: `[partition, end]`);
    /// dead letters written after the redrive began are left for the next.
    public var ends: [[Int64]] = []
    public var stale_after_ms: Int64 = 0
    /// The first failure, if any.
    public var error: String?
}
