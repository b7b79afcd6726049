import Foundation
import Logging
import ServiceLifecycle

/// Reports this daemon's state to the reports topic every interval and
/// follows everyone's reports (a `TopicTail` on thread `cluster-reports`,
/// from each partition's last 1000 records) into the `ClusterBook`.
///
/// Listed right after the producer's service, so it reports until the
/// groups and the schedule consumer stopped, then writes a last report with
/// state `stopped` (awaiting its acknowledgement) before the producer closes.
/// `ClusterStopNotice`, listed last, marks the stop as soon as it begins.
struct ClusterService: Service {
    let book: ClusterBook
    let topic: String
    let bootstrapServers: String
    let properties: [String: String]
    let source: ClusterReportSource
    let publisher: TaskPublisher
    let logger: Logger

    /// Longest a stop waits for its last report's acknowledgement (seconds).
    static let lastReportWait = Duration.seconds(2)

    func run() async throws {
        let tail = makeTail()
        tail.start()
        // Until this service's turn to stop: the sleep is cancelled then.
        try? await cancelWhenGracefulShutdown {
            var failures = 0
            while true {
                failures = await send(await source.report(state: book.isStopping ? "stopping" : "running"), failures: failures)
                try await Task.sleep(for: .milliseconds(book.intervalMs))
            }
        }
        _ = await send(await source.report(state: "stopped"), failures: 0, wait: true)
        let thread = DedicatedThread(name: "cluster-reports-stop")
        try? await thread.run { tail.stop() }  // a fresh thread: never stopped yet
        thread.stop()
    }

    /// Writes `report` (and records it locally at once); with `wait`, until
    /// it is acknowledged. Logs the first of a run of failures only.
    private func send(_ report: DaemonReport, failures: Int, wait: Bool = false) async -> Int {
        book.apply(report)
        let value = (try? JSONEncoder().encode(report)).map { Array($0) } ?? []
        let message = OutgoingMessage(topic: topic, key: Array(report.id.utf8), value: value)
        switch publisher.enqueue(message, checkSize: false) {
        case .failure(let error):
            if failures == 0 { logger.warning("could not write this daemon's report: \(error)", metadata: [LogKey.topic: "\(topic)"]) }
            return failures + 1
        case .success(let delivery):
            guard wait else {
                // Acknowledged or not, the next report follows in an interval; only say when they fail.
                Task {
                    if case .none = try? await delivery.report() {
                        logger.debug("a report was not acknowledged", metadata: [LogKey.topic: "\(topic)"])
                    }
                }
                return 0
            }
            // Bounded: with the brokers gone a stop must not wait the producer's timeout for it.
            let written = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let once = OneShot(continuation)
                once.resume(false, after: Self.lastReportWait)
                Task { once.resume((try? await delivery.report()) != nil) }
            }
            if !written {
                logger.warning("this daemon's last report (stopped) was not acknowledged within \(Self.lastReportWait); the others show it as gone after \(ClusterTable.silentIntervals) intervals",
                               metadata: [LogKey.topic: "\(topic)"])
            }
            return 0
        }
    }

    private func makeTail() -> TopicTail {
        let book = book
        let logger = logger
        let topic = topic
        return TopicTail(
            name: "cluster-reports", topic: topic, start: .tail(1000), bootstrapServers: bootstrapServers,
            properties: properties, logger: logger,
            onRecord: { record in
                guard let key = record.key, !key.isEmpty else { return }
                guard let value = record.value, !value.isEmpty else {
                    book.remove(id: key.utf8String)
                    return
                }
                do {
                    book.apply(try JSONDecoder().decode(DaemonReport.self, from: Data(value)))
                } catch {
                    logger.debug("reports topic: skipping a record that is not a report: \(error)",
                                 metadata: [LogKey.topic: "\(topic)", LogKey.offset: "\(record.offset)"])
                }
            })
    }
}

/// Listed last among the daemon's services, so its graceful shutdown comes
/// first: marks the daemon as stopping, which the next report says.
struct ClusterStopNotice: Service {
    let book: ClusterBook

    func run() async throws {
        try? await gracefulShutdown()
        book.markStopping()
    }
}
