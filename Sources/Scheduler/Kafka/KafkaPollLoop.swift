import Foundation

/// A dedicated thread that calls a blocking librdkafka poll function until
/// stopped. The poll function must block for a bounded time (librdkafka's
/// `timeout_ms`), so the loop neither spins nor delays `stop` for long.
final class KafkaPollLoop: @unchecked Sendable {
    // Threading rule: `running` is guarded by `lock`; `poll` runs only on the thread.
    private let lock = NSLock()
    private var running = true
    private let finished = DispatchSemaphore(value: 0)

    init(name: String, poll: @escaping @Sendable () -> Void) {
        let thread = Thread { [self] in
            while isRunning { poll() }
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    private var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        return running
    }

    /// Ends the loop after the current poll and waits for the thread.
    func stop() {
        lock.lock()
        let wasRunning = running
        running = false
        lock.unlock()
        if wasRunning { finished.wait() }
    }
}
