import Logging
import ServiceLifecycle

/// Runs this daemon's share of the schedules: the consumer of the schedule
/// topic and the timer thread. On graceful shutdown it leaves the group
/// first (fires in flight settle, partitions move to the other daemons),
/// then stops the timer. Listed after the producer's service, so it stops
/// before the producer closes.
struct ScheduleService: Service {
    let store: ScheduleStore
    let group: String
    let bootstrapServers: String
    let properties: [String: String]
    var membership = GroupMembership()

    func run() async throws {
        let firer = ScheduleFirer(store: store)
        let consumer = ScheduleConsumer(store: store, group: group, bootstrapServers: bootstrapServers, properties: properties, membership: membership)
        firer.start()
        consumer.start()
        try? await gracefulShutdown()
        // Both stops block (a revoke waits up to 5 s): off the concurrency pool.
        let thread = DedicatedThread(name: "schedule-stop")
        try? await thread.run {  // a fresh thread: never stopped yet
            consumer.stop()
            firer.stop()
        }
        thread.stop()
    }
}
