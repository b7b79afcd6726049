import Foundation
@testable import Scheduler
import Testing

@Suite("Dedicated threads")
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
    func named(name: String, shown: String) async {
        let thread = DedicatedThread(name: name)
        let seen = await thread.run { Self.osName() }
        thread.stop()
        #expect(seen == shown)
        #expect(shown.utf8.count <= 15)
    }
}
