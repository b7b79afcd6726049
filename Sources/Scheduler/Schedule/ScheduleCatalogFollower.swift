import Logging
import ServiceLifecycle

/// Keeps `ScheduleStore.catalog` up to date on every daemon, whether it
/// fires schedules or not: a `TopicTail` (thread `schedule-catalog`) reads
/// every partition of the schedule topic from its beginning and follows it
/// live, outside the schedule group, so `GET /tasks` on any daemon lists
/// every schedule of the cluster.
struct ScheduleCatalogFollower: Service {
    let store: ScheduleStore
    let bootstrapServers: String
    let properties: [String: String]

    func run() async throws {
        let store = store
        let tail = TopicTail(
            name: "schedule-catalog", topic: store.topic, start: .beginning, bootstrapServers: bootstrapServers,
            properties: properties, logger: store.logger,
            onPartitions: { partitions in store.catalog.withLock { $0.setPartitions(partitions) } },
            onRecord: { record in
                guard let key = record.key, !key.isEmpty else { return }
                let applied = store.catalog.withLock { $0.apply(id: key.utf8String, partition: record.partition, value: record.value) }
                if !applied {
                    store.logger.debug("schedule catalog: skipping a record that is not a schedule",
                                       metadata: [LogKey.topic: "\(store.topic)", LogKey.offset: "\(record.offset)"])
                }
            },
            onEnd: { partition in
                let live = store.catalog.withLock { catalog in
                    catalog.markLive(partition)
                    return catalog.isLive
                }
                if live { store.catalogLive.update { $0 = true } }
            })
        tail.start()
        try? await gracefulShutdown()
        let thread = DedicatedThread(name: "schedule-catalog-stop")
        try? await thread.run { tail.stop() }  // a fresh thread: never stopped yet
        thread.stop()
    }
}

extension ScheduleStore {
    /// One schedule of the cluster and the partition it lives in.
    struct Listed: Sendable {
        let schedule: Schedule
        let partition: Int32
        /// This daemon holds the partition (its own table's state, the freshest).
        let local: Bool
    }

    /// The first `limit` schedules of the cluster due, earliest first: for
    /// the partitions this daemon holds and read to their end, its own
    /// table's (the freshest: a fire's new state, a fired one-shot's removal,
    /// are there before they are read back); for the others, the catalog's.
    func clusterSchedules(limit: Int = .max) -> [Listed] {
        let (owned, live) = book.read { table in
            (Array(table.schedules.prefix(limit)), Set(table.partitions.filter { $0.value == .live }.keys))
        }
        var listed: [String: Listed] = [:]
        for (schedule, partition) in catalog.withLock({ $0.schedules(limit: limit, excluding: live) }) {
            listed[schedule.id] = Listed(schedule: schedule, partition: partition, local: false)
        }
        for schedule in owned {
            let partition = ScheduleRecord.partition(of: schedule.id, partitions: placement.partitions)
            listed[schedule.id] = Listed(schedule: schedule, partition: partition, local: listed[schedule.id]?.local ?? true)
        }
        return Array(listed.values.sorted { ($0.schedule.nextDueMs, $0.schedule.id) < ($1.schedule.nextDueMs, $1.schedule.id) }.prefix(limit))
    }
}
