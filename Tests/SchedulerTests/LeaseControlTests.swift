import Foundation
import Testing
@testable import Scheduler

/// The handoff protocol of `LeaseControl` alone, between plain threads: the
/// waits end on the signal that ends them, not on a poll.
@Suite("LeaseControl: the successor's wait and a paused holder end on their signal", .sharesMachine, .timeLimit(.minutes(1)))
struct LeaseControlTests {
    /// Runs `body` on a thread of its own (the waits block) and returns its result.
    private func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: body()) }
        }
    }

    @Test("a successor asleep after its spin is woken by the release, with what the holder said")
    func successorWokenByRelease() async {
        let control = LeaseControl()
        let successor = Task { await onThread { () -> ContinuousClock.Instant in
            control.awaitRelease()
            return .now
        } }
        // Long past the successor's spin: it sleeps now.
        try? await Task.sleep(for: .milliseconds(200))
        #expect(control.takeoverRequested)
        #expect(!control.isReleased)
        let at = ContinuousClock.now
        control.release(at: at, messagesWaiting: true)
        let returned = await successor.value
        #expect(returned >= at)
        // Woken by the release: not after a sleep of its own.
        #expect(returned - at < .milliseconds(100))
        #expect(control.released?.messagesWaiting == true)
    }

    @Test("a pause ends at once when a stop is requested, with its reason; else at its deadline")
    func pauseEndsOnStop() async {
        let control = LeaseControl()
        let started = ContinuousClock.now
        #expect(await onThread { control.waitForStop(until: .now + .milliseconds(50)) } == nil)
        #expect(ContinuousClock.now - started >= .milliseconds(50))
        let paused = Task { await onThread { () -> (SliceEndReason?, ContinuousClock.Instant) in
            (control.waitForStop(until: .now + .seconds(30)), .now)
        } }
        try? await Task.sleep(for: .milliseconds(100))
        let asked = ContinuousClock.now
        control.requestStop(.revoked)
        let (reason, ended) = await paused.value
        #expect(reason == .revoked)
        #expect(ended - asked < .seconds(1))
        #expect(control.stopReason == .revoked)
    }
}
