import Testing
@testable import Scheduler

@Suite("Sharing the machine between suites: a timing suite runs alone", .sharesMachine)
struct MachineShareTests {
    @Test("a suite that runs alone waits for the shared suites running, and holds back those that come after it", .timeLimit(.minutes(1)))
    func aloneWaitsAndHoldsBack() async throws {
        let share = MachineShare()
        let entered = WatchedValue<[String]>([])
        let released = WatchedValue<Set<String>>([])
        @Sendable func hold(_ name: String, alone: Bool) async {
            await share.run(alone: alone) {
                entered.update { $0.append(name) }
                _ = await released.wait { $0.contains(name) }
            }
        }
        let first = Task { await hold("shared-1", alone: false) }
        #expect(await entered.wait(timeout: .seconds(10)) { $0 == ["shared-1"] })
        let timing = Task { await hold("alone", alone: true) }
        #expect(await share.snapshot.wait(timeout: .seconds(10)) { $0.aloneQueued == 1 })
        let later = Task { await hold("shared-2", alone: false) }
        #expect(await share.snapshot.wait(timeout: .seconds(10)) { $0.sharedQueued == 1 })
        #expect(entered.read { $0 } == ["shared-1"])

        released.update { _ = $0.insert("shared-1") }
        #expect(await entered.wait(timeout: .seconds(10)) { $0 == ["shared-1", "alone"] })
        #expect(share.snapshot.read { $0 } == .init(alone: true, shared: 0, aloneQueued: 0, sharedQueued: 1))

        released.update { _ = $0.insert("alone") }
        #expect(await entered.wait(timeout: .seconds(10)) { $0 == ["shared-1", "alone", "shared-2"] })
        released.update { _ = $0.insert("shared-2") }
        for task in [first, timing, later] { await task.value }
        #expect(share.snapshot.read { $0 } == .init())
    }

    @Test("shared suites run together; two suites that run alone take turns", .timeLimit(.minutes(1)))
    func sharedTogetherAloneInTurn() async throws {
        let share = MachineShare()
        let inside = WatchedValue<Set<String>>([])
        let released = WatchedValue<Set<String>>([])
        @Sendable func hold(_ name: String, alone: Bool) async {
            await share.run(alone: alone) {
                inside.update { _ = $0.insert(name) }
                _ = await released.wait { $0.contains(name) }
                inside.update { _ = $0.remove(name) }
            }
        }
        let a = Task { await hold("a", alone: false) }
        let b = Task { await hold("b", alone: false) }
        #expect(await inside.wait(timeout: .seconds(10)) { $0 == ["a", "b"] })
        released.update { $0.formUnion(["a", "b"]) }
        await a.value; await b.value

        let x = Task { await hold("x", alone: true) }
        let y = Task { await hold("y", alone: true) }
        #expect(await share.snapshot.wait(timeout: .seconds(10)) { $0.alone && $0.aloneQueued == 1 })
        let first = inside.read { $0 }
        #expect(first.count == 1)
        released.update { $0.formUnion(first) }
        #expect(await inside.wait(timeout: .seconds(10)) { $0.count == 1 && $0 != first })
        released.update { $0.formUnion(["x", "y"]) }
        await x.value; await y.value
        #expect(share.snapshot.read { $0 } == .init())
    }
}
