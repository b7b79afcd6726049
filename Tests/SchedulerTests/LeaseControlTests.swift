import Foundation
import Synchronization
import Testing
@testable import Scheduler

/// The handoff protocol of `LeaseControl` and the stop every wait hears,
/// between plain threads: each wait ends on the signal that ends it.
@Suite("LeaseControl and StopSignal: a handoff, a renewal, and waits a stop ends", .sharesMachine, .timeLimit(.minutes(1)))
struct LeaseControlTests {
    /// Runs `body` on a thread of its own (the waits block) and returns its result.
    private func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: body()) }
        }
    }

    @Test("the holder lets go when the successor asks and spins; the successor returns with what the holder said")
    func handoff() async {
        let control = LeaseControl()
        #expect(!control.takeoverRequested && !control.successorReady, "nobody asked yet")
        let successor = Task { await onThread { () -> ContinuousClock.Instant in
            control.awaitRelease()
            return .now
        } }
        // The holder, between messages: goes on until the successor is ready.
        let ready = await onThread { () -> Bool in
            let until = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < until { if control.successorReady { return true } }
            return false
        }
        #expect(ready)
        #expect(control.takeoverRequested)
        #expect(!control.isReleased)
        let at = ContinuousClock.now
        control.release(at: at, messagesWaiting: true)
        let returned = await successor.value
        #expect(returned >= at)
        #expect(control.isReleased)
        #expect(control.released?.at == at && control.released?.messagesWaiting == true)
    }

    @Test("a renewal is taken once; a stop gives its reason, the later one replacing the earlier")
    func renewalAndStop() {
        let control = LeaseControl()
        #expect(control.takeRenewal() == nil)
        control.renew(sliceMs: 250)
        #expect(control.takeRenewal() == 250)
        #expect(control.takeRenewal() == nil)
        #expect(control.stopReason == nil && !control.stop.isRequested)
        control.requestStop(.revoked)
        #expect(control.stopReason == .revoked)
        control.requestStop(.shutdown)
        #expect(control.stopReason == .shutdown)
    }

    @Test("a pause ends at once when a stop is requested; else at its deadline")
    func pauseEndsOnStop() async throws {
        let stop = StopSignal()
        let started = ContinuousClock.now
        #expect(await onThread { stop.wait(until: .now + .milliseconds(50)) } == false)
        #expect(ContinuousClock.now - started >= .milliseconds(50))
        let paused = Task { await onThread { () -> (Bool, ContinuousClock.Instant) in
            (stop.wait(until: .now + .seconds(30)), .now)
        } }
        #expect(await eventually(timeout: .seconds(10)) { stop.waits == 1 })
        let asked = ContinuousClock.now
        stop.request()
        let (stopped, ended) = await paused.value
        #expect(stopped)
        #expect(ended - asked < .seconds(1))
        #expect(stop.waits == 0, "the wait's wake-up is gone with it")
        // Requested before the wait: it does not wait at all.
        let again = ContinuousClock.now
        #expect(await onThread { stop.wait(until: .now + .seconds(30)) })
        #expect(ContinuousClock.now - again < .seconds(1))
    }

    @Test("a wait for another value ends at the stop, and still at its own change")
    func otherWaitEndsOnStop() async throws {
        let value = WatchedValue(0)
        let stop = StopSignal()
        // Deadlines far beyond what the checks allow, so a wake-up that never
        // comes fails the test instead of hanging it.
        let changed = Task { await onThread { value.waitBlocking(until: Date(timeIntervalSinceNow: 20), or: stop) { $0 == 1 } } }
        #expect(await eventually(timeout: .seconds(10)) { stop.waits == 1 })
        value.update { $0 = 1 }
        #expect(await changed.value, "its own change ends it: the test held")
        let stopped = Task { await onThread { () -> (Bool, ContinuousClock.Instant) in
            (value.waitBlocking(until: Date(timeIntervalSinceNow: 20), or: stop) { $0 == 2 }, .now)
        } }
        #expect(await eventually(timeout: .seconds(10)) { stop.waits == 1 })
        let asked = ContinuousClock.now
        stop.request()
        let (held, ended) = await stopped.value
        #expect(!held, "the stop ends it: the test did not hold")
        #expect(ended - asked < .seconds(1), "woken by the stop, not by its deadline")
    }

    @Test("a sender refused for a full queue is woken by the next delivery report, or by a stop; else it waits out its bound")
    func queueRoom() async throws {
        let room = QueueRoom()
        room.noteFreed()  // nobody waits: nothing to wake
        let started = ContinuousClock.now
        await onThread { room.wait(timeout: .milliseconds(50), stop: nil) }
        #expect(ContinuousClock.now - started >= .milliseconds(50))

        let woken = Task { await onThread { () -> ContinuousClock.Instant in
            room.wait(timeout: .seconds(30), stop: nil)
            return .now
        } }
        #expect(await eventually(timeout: .seconds(10)) { room.waiters == 1 })
        let reported = ContinuousClock.now
        room.noteFreed()
        #expect(await woken.value - reported < .seconds(1))

        let stop = StopSignal()
        let stopped = Task { await onThread { () -> ContinuousClock.Instant in
            room.wait(timeout: .seconds(30), stop: stop)
            return .now
        } }
        #expect(await eventually(timeout: .seconds(10)) { room.waiters == 1 && stop.waits == 1 })
        let asked = ContinuousClock.now
        stop.request()
        #expect(await stopped.value - asked < .seconds(1))
        #expect(room.waiters == 0)
    }
}
