import Foundation

/// A thread that runs one blocking job again and again until stopped: the
/// shape of every Kafka client loop here (a client made, polled and closed on
/// one thread). When the job throws (the brokers do not answer, the topic is
/// missing) `onFailure` is told and the job runs again a second later; a stop
/// ends that wait at once.
final class RetryLoop: @unchecked Sendable {
    // Safe because `running` is only touched with `condition` locked; the
    // job runs on the loop's thread only.
    private let condition = NSCondition()
    private var running = false
    private let finished = DispatchSemaphore(value: 0)
    /// The thread's name.
    let name: String
    /// Between a failed run of the job and the next.
    static let retryDelay: TimeInterval = 1

    init(name: String) {
        self.name = name
    }

    /// True from `start` until `stop`: the job's own loops check it.
    var isRunning: Bool {
        condition.lock()
        defer { condition.unlock() }
        return running
    }

    /// Starts the thread running `job` while not stopped; `onExit` runs on
    /// the thread when it ends.
    func start(_ job: @escaping @Sendable () throws -> Void, onFailure: @escaping @Sendable (Error) -> Void,
               onExit: @escaping @Sendable () -> Void = {}) {
        condition.lock()
        running = true
        condition.unlock()
        let thread = Thread { [self] in
            while isRunning {
                do {
                    try job()
                } catch {
                    onFailure(error)
                    pause(seconds: Self.retryDelay)
                }
            }
            onExit()
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Waits `seconds`, or less if the loop is stopped meanwhile (signalled).
    func pause(seconds: TimeInterval) {
        let deadline = Date(timeIntervalSinceNow: seconds)
        condition.lock()
        defer { condition.unlock() }
        while running && condition.wait(until: deadline) {}
    }

    /// Ends the loop (the job returns at its next `isRunning` check) and
    /// waits for the thread. `waking` wakes a job asleep on a signal of its
    /// own, once `isRunning` is false. Blocking: call it off the concurrency
    /// pool. Safe before `start` and twice.
    func stop(waking: () -> Void = {}) {
        condition.lock()
        let wasRunning = running
        running = false
        condition.broadcast()
        condition.unlock()
        guard wasRunning else { return }
        waking()
        finished.wait()
    }
}
