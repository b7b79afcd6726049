import Testing
@testable import Scheduler

@Suite("Sharing the machine between suites: a timing suite runs alone", .sharesMachine)
struct MachineShareTests {
    /// Enters `share` as `name` and stays until `released` holds the name.
    @Sendable static func hold(_ share: MachineShare, _ name: String, alone: Bool,
                               entered: WatchedValue<[String]>, released: WatchedValue<Set<String>>) async {
        await share.run(alone: alone) {
            entered.update { $0.append(name) }
            _ = await released.wait { $0.contains(name) }
        }
    }

    @Test("a suite that runs alone waits for the shared suites, those running and those that come while it waits", .timeLimit(.minutes(1)))
    func aloneWaitsForShared() async throws {
        let share = MachineShare()
        let entered = WatchedValue<[String]>([])
        let released = WatchedValue<Set<String>>([])
        let first = Task { await Self.hold(share, "shared-1", alone: false, entered: entered, released: released) }
        #expect(await entered.wait(timeout: .seconds(10)) { $0 == ["shared-1"] })
        let timing = Task { await Self.hold(share, "alone", alone: true, entered: entered, released: released) }
        #expect(await share.snapshot.wait(timeout: .seconds(10)) { $0.aloneQueued == 1 })
        let second = Task { await Self.hold(share, "shared-2", alone: false, entered: entered, released: released) }
        #expect(await entered.wait(timeout: .seconds(10)) { $0 == ["shared-1", "shared-2"] })

        released.update { _ = $0.insert("shared-1") }
        await first.value
        #expect(share.snapshot.read { $0 } == .init(alone: false, shared: 1, aloneQueued: 1, sharedQueued: 0))
        released.update { _ = $0.insert("shared-2") }
        #expect(await entered.wait(timeout: .seconds(10)) { $0 == ["shared-1", "shared-2", "alone"] })
        released.update { _ = $0.insert("alone") }
        for task in [second, timing] { await task.value }
        #expect(share.snapshot.read { $0 } == .init())
    }

    @Test("suites that run alone take turns; a shared suite that comes meanwhile goes before the next one", .timeLimit(.minutes(1)))
    func aloneInTurnSharedFirst() async throws {
        let share = MachineShare()
        let entered = WatchedValue<[String]>([])
        let released = WatchedValue<Set<String>>([])
        let x = Task { await Self.hold(share, "x", alone: true, entered: entered, released: released) }
        #expect(await entered.wait(timeout: .seconds(10)) { $0 == ["x"] })
        let y = Task { await Self.hold(share, "y", alone: true, entered: entered, released: released) }
        #expect(await share.snapshot.wait(timeout: .seconds(10)) { $0.aloneQueued == 1 })
        let late = Task { await Self.hold(share, "shared", alone: false, entered: entered, released: released) }
        #expect(await share.snapshot.wait(timeout: .seconds(10)) { $0.sharedQueued == 1 })
        #expect(entered.read { $0 } == ["x"])

        released.update { _ = $0.insert("x") }
        #expect(await entered.wait(timeout: .seconds(10)) { $0 == ["x", "shared"] })
        #expect(share.snapshot.read { $0 } == .init(alone: false, shared: 1, aloneQueued: 1, sharedQueued: 0))
        released.update { _ = $0.insert("shared") }
        #expect(await entered.wait(timeout: .seconds(10)) { $0 == ["x", "shared", "y"] })
        released.update { _ = $0.insert("y") }
        for task in [x, y, late] { await task.value }
        #expect(share.snapshot.read { $0 } == .init())
    }

    @Test("at most `width` tests of the shared suites run at once; the next starts when one ends", .timeLimit(.minutes(1)))
    func sharedTestsBounded() async throws {
        let slots = TestSlots(width: 2)
        let entered = WatchedValue<[String]>([])
        let released = WatchedValue<Set<String>>([])
        let tasks = ["a", "b", "c"].map { name in
            Task {
                await slots.run {
                    entered.update { $0.append(name) }
                    _ = await released.wait { $0.contains(name) }
                }
            }
        }
        #expect(await slots.snapshot.wait(timeout: .seconds(10)) { $0.running == 2 && $0.waiting == 1 })
        #expect(entered.read { $0.count } == 2)
        let first = try #require(entered.read { $0.first })
        released.update { _ = $0.insert(first) }
        #expect(await entered.wait(timeout: .seconds(10)) { $0.count == 3 })
        #expect(slots.snapshot.read { $0.running } == 2)
        released.update { $0.formUnion(["a", "b", "c"]) }
        for task in tasks { await task.value }
        #expect(slots.snapshot.read { $0 } == .init())
    }

    @Test("a test of a shared suite holds one of the shared slots while it runs")
    func sharedTestHoldsSlot() {
        #expect(TestSlots.shared.snapshot.read { $0.running } >= 1)
    }
}
