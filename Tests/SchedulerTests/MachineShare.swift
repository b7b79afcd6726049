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

/// A counting semaphore: at most `width` bodies run at once, the others
/// wait their turn in arrival order.
///
/// The shared suites start together, and each runs its own tests at once:
/// unbounded, two hundred tests started within a second (daemons, groups,
/// Chromium), the embedded broker in the test process starved, and group
/// sessions, producer timeouts and first reads ran past their bounds (CI,
/// 2026-12-05: a dashboard test's POST timed out). Bounded, the shared
/// phase keeps the machine busy without drowning it.
actor TestSlots {
    /// The bound of the shared phase: tests of shared suites running at once.
    static let shared = TestSlots(width: 8)

    let width: Int
    private var running = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []
    struct Counts: Equatable, Sendable { var running = 0, waiting = 0 }
    nonisolated let snapshot = WatchedValue(Counts())

    init(width: Int) { self.width = width }

    func run<T: Sendable>(_ body: @Sendable () async throws -> T) async rethrows -> T {
        await acquire()
        do {
            let result = try await body()
            release()
            return result
        } catch {
            release()
            throw error
        }
    }

    private func publish() {
        let now = Counts(running: running, waiting: waiters.count)
        snapshot.update { $0 = now }
    }

    private func acquire() async {
        if running < width {
            running += 1
            publish()
            return
        }
        // The releaser hands its slot over before resuming this one.
        await withCheckedContinuation { waiters.append($0); publish() }
    }

    private func release() {
        if waiters.isEmpty { running -= 1 } else { waiters.removeFirst().resume() }
        publish()
    }
}

/// The suite trait that takes `MachineShare` for the suite's whole run and,
/// in a shared suite, one of `TestSlots.shared` for each test case.
struct MachineShareTrait: SuiteTrait, TestTrait, TestScoping {
    let alone: Bool

    // Shared suites hand the trait to their tests, which take a slot each.
    var isRecursive: Bool { !alone }

    func scopeProvider(for test: Test, testCase: Test.Case?) -> Self? {
        // Once around the suite; in a shared suite, once around each test case.
        if test.isSuite { return testCase == nil ? self : nil }
        return !alone && testCase != nil ? self : nil
    }

    func provideScope(for test: Test, testCase: Test.Case?,
                      performing function: @Sendable () async throws -> Void) async throws {
        if test.isSuite {
            try await MachineShare.shared.run(alone: alone, function)
        } else {
            try await TestSlots.shared.run(function)
        }
    }
}

extension Trait where Self == MachineShareTrait {
    /// A timing suite: no other suite runs while it does. Give it
    /// `.serialized` too, so its own tests do not run at once either.
    static var runsAlone: Self { MachineShareTrait(alone: true) }
    /// Any other suite: runs beside the other shared suites.
    static var sharesMachine: Self { MachineShareTrait(alone: false) }
}
