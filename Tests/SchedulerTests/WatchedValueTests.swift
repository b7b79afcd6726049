import Foundation
import Testing
@testable import Scheduler

@Suite("WatchedValue: waits woken by the change that satisfies them", .sharesMachine)
struct WatchedValueTests {
    @Test("an async wait is resumed by the update that satisfies it, not before; a wait already satisfied returns at once")
    func resumedByUpdate() async {
        let value = WatchedValue(0)
        async let reached = value.wait(timeout: .seconds(10)) { $0 >= 3 }
        for step in 1...3 {
            try? await Task.sleep(for: .milliseconds(20))
            value.update { $0 = step }
        }
        #expect(await reached)
        #expect(await value.wait(timeout: .milliseconds(1)) { $0 == 3 })
    }

    @Test("a wait times out (false) and leaves no waiter behind; a cancelled wait returns false at once")
    func timeoutAndCancel() async {
        let value = WatchedValue(0)
        let started = ContinuousClock.now
        #expect(await !value.wait(timeout: .milliseconds(100)) { $0 > 0 })
        #expect(ContinuousClock.now - started >= .milliseconds(100))
        let task = Task { await value.wait { $0 > 0 } }
        try? await Task.sleep(for: .milliseconds(50))
        task.cancel()
        #expect(await task.value == false)
        // Cancelled before it could register.
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await value.wait { $0 > 0 }
        }
        #expect(await early.value == false)
    }

    @Test("a blocking wait on a thread is woken by an update")
    func blocking() async throws {
        let value = WatchedValue(false)
        let thread = DedicatedThread(name: "watched-test")
        defer { thread.stop() }
        async let woken = thread.run { value.waitBlocking(until: Date(timeIntervalSinceNow: 10)) { $0 } }
        try? await Task.sleep(for: .milliseconds(50))
        value.update { $0 = true }
        #expect(try await woken)
    }
}
