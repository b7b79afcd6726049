/// A dedicated thread that calls a blocking librdkafka poll function until
/// stopped: a `RetryLoop` whose job is the poll. The poll function must block
/// for a bounded time (librdkafka's `timeout_ms`), so the loop neither spins
/// nor delays `stop` for long.
final class KafkaPollLoop: Sendable {
    private let loop: RetryLoop

    init(name: String, poll: @escaping @Sendable () -> Void) {
        loop = RetryLoop(name: name)
        loop.start({ [loop] in
            while loop.isRunning { poll() }
        }, onFailure: { _ in })
    }

    /// Ends the loop after the current poll and waits for the thread.
    func stop() {
        loop.stop()
    }
}
