import Testing
@testable import Scheduler

/// How a suite shares this (2-core) machine with the others while `swift test`
/// runs every suite at once.
///
/// Suites that time rebalances, faults, killed daemons or shutdown bounds
/// against the embedded broker measure what they test only on a quiet
/// machine: run beside forty other suites, group sessions and timeouts
/// stretch past their bounds. They take the machine alone (`.runsAlone`);
/// every other suite takes it shared (`.sharesMachine`). So a plain
/// `swift test` gives the timing suites the quiet machine they need, without
/// a list of suite names kept in the Makefile.
///
/// The rule is a readers-first readers/writer lock held for a whole suite:
/// the shared suites (which all start at once) run first, together, on a
/// fresh embedded broker, as they did as `make test`'s first phase; a suite
/// that runs alone waits until no shared suite runs or waits, and then the
/// alone suites take turns. A shared suite that arrives while one runs
/// alone waits for it and goes before the next one. (Alone suites first
/// left forty shared suites to start together at the end, on a broker
/// holding fourteen minutes of the timing suites' topics: some of them
/// timed out producing.)
actor MachineShare {
    static let shared = MachineShare()

    private var sharedHolders = 0
    private var aloneHolder = false
    private var aloneWaiters: [CheckedContinuation<Void, Never>] = []
    private var sharedWaiters: [CheckedContinuation<Void, Never>] = []

    /// Who holds and who waits, after every change: what its own test waits on.
    struct Snapshot: Equatable, Sendable {
        var alone = false, shared = 0, aloneQueued = 0, sharedQueued = 0
    }
    nonisolated let snapshot = WatchedValue(Snapshot())

    private func publish() {
        let now = Snapshot(alone: aloneHolder, shared: sharedHolders,
                           aloneQueued: aloneWaiters.count, sharedQueued: sharedWaiters.count)
        snapshot.update { $0 = now }
    }

    func run<T: Sendable>(alone: Bool, _ body: @Sendable () async throws -> T) async rethrows -> T {
        if alone { await acquireAlone() } else { await acquireShared() }
        do {
            let result = try await body()
            release(alone: alone)
            return result
        } catch {
            release(alone: alone)
            throw error
        }
    }

    private func acquireShared() async {
        if !aloneHolder {
            sharedHolders += 1
            publish()
            return
        }
        // The releaser counts this holder in before resuming it.
        await withCheckedContinuation { sharedWaiters.append($0); publish() }
    }

    private func acquireAlone() async {
        if !aloneHolder && sharedHolders == 0 && sharedWaiters.isEmpty {
            aloneHolder = true
            publish()
            return
        }
        // The releaser marks this one as the holder before resuming it.
        await withCheckedContinuation { aloneWaiters.append($0); publish() }
    }

    private func release(alone: Bool) {
        if alone { aloneHolder = false } else { sharedHolders -= 1 }
        defer { publish() }
        guard !aloneHolder else { return }
        if !sharedWaiters.isEmpty {
            sharedHolders += sharedWaiters.count
            sharedWaiters.forEach { $0.resume() }
            sharedWaiters.removeAll()
        } else if sharedHolders == 0, !aloneWaiters.isEmpty {
            aloneHolder = true
            aloneWaiters.removeFirst().resume()
        }
    }
}

/// The suite trait that takes `MachineShare` for the suite's whole run.
struct MachineShareTrait: SuiteTrait, TestScoping {
    let alone: Bool

    var isRecursive: Bool { false }

    func scopeProvider(for test: Test, testCase: Test.Case?) -> Self? {
        // Once around the suite, not again around each of its tests.
        test.isSuite && testCase == nil ? self : nil
    }

    func provideScope(for test: Test, testCase: Test.Case?,
                      performing function: @Sendable () async throws -> Void) async throws {
        try await MachineShare.shared.run(alone: alone, function)
    }
}

extension Trait where Self == MachineShareTrait {
    /// A timing suite: no other suite runs while it does. Give it
    /// `.serialized` too, so its own tests do not run at once either.
    static var runsAlone: Self { MachineShareTrait(alone: true) }
    /// Any other suite: runs beside the other shared suites.
    static var sharesMachine: Self { MachineShareTrait(alone: false) }
}
