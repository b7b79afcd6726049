import Foundation
@testable import Scheduler
import Testing

@Suite("Dedicated threads", .sharesMachine)
struct DedicatedThreadTests {
    /// The name the operating system holds for the calling thread.
    private static func osName() -> String {
        let comm = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
        return comm.trimmingCharacters(in: .newlines)
    }

    @Test("the OS shows a thread's name (top -H, perf): whole up to 15 bytes, else its last 15 bytes", arguments: [
        ("lua-validate", "lua-validate"),
        ("worker-bench-lanes-4-DC5CA8-1", "anes-4-DC5CA8-1"),
        ("worker-é-ordérs-0", "er-é-ordérs-0"),
    ])
    func named(name: String, shown: String) async throws {
        let thread = DedicatedThread(name: name)
        let seen = try await thread.run { Self.osName() }
        thread.stop()
        #expect(seen == shown)
        #expect(shown.utf8.count <= 15)
    }

    @Test("a job given to a stopped thread fails its caller instead of being dropped", .timeLimit(.minutes(1)))
    func stoppedThreadFailsCaller() async throws {
        let thread = DedicatedThread(name: "test-stopped")
        #expect(try await thread.run { 1 } == 1)
        thread.stop()
        #expect(thread.submit {} == false)
        await #expect(throws: DedicatedThreadStopped.self) { try await thread.run { 2 } }
        await #expect(throws: DedicatedThreadStopped.self) { try await thread.run { () throws -> Int in 3 } }
        // Answers at once, not after the limit.
        let started = ContinuousClock.now
        #expect(await thread.run(within: .seconds(30)) { 4 } == nil)
        #expect(ContinuousClock.now - started < .seconds(5))
    }
}
