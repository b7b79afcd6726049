import Foundation
import Hummingbird
import Logging

/// The schedules resource, on any daemon: `GET /schedules[?source=&state=]`,
/// `GET|PUT|DELETE /schedules/<id>`, `POST /schedules/<id>/pause|resume|trigger`.
/// Every change answers once its record is acknowledged; the owner applies
/// it when it reads it (about a fetch, ~100 ms; at once when it is this daemon).
struct ScheduleRoutes: Sendable {
    let schedules: ScheduleStore
    let cluster: ClusterBook
    let script: GenerateScript
    let maxBodyBytes: Int

    func add(to router: Router<BasicRequestContext>) {
        router.get("/schedules") { request, _ in
            let source = try Self.filter(request, "source", ScheduleSource.allCases.map(\.rawValue))
            let state = try Self.filter(request, "state", ["active", "paused"])
            // `?limit=N`: the N due first (only those decoded when nothing is filtered).
            let limit = try TaskRoutes.scheduleLimit(request)
            let listed = schedules.clusterSchedules(limit: source == nil && state == nil ? limit : .max)
            let views = views(listed).filter { (source == nil || $0.source == source) && (state == nil || $0.state == state) }
            return JSONBody.response(Array(views.prefix(limit)))
        }
        router.get("/schedules/:id") { _, context in
            let id = context.parameters.get("id") ?? ""
            do throws(ScheduleError) {
                guard let listed = try schedules.known(id: id) else { throw ScheduleError.noSuchSchedule(id: id) }
                return JSONBody.response(views([listed])[0])
            } catch {
                throw TaskRoutes.apiError(error)
            }
        }
        router.put("/schedules/:id") { request, context in
            let id = context.parameters.get("id") ?? ""
            return try await put(id: id, request, context)
        }
        router.delete("/schedules/:id") { _, context in
            let id = context.parameters.get("id") ?? ""
            do throws(ScheduleError) {
                try await schedules.remove(id: id)
                return JSONBody.response(["cancelled": id])
            } catch {
                throw TaskRoutes.apiError(error)
            }
        }
        for control in ScheduleStore.Control.allCases {
            router.post("/schedules/:id/\(control.rawValue)") { _, context in
                let id = context.parameters.get("id") ?? ""
                do throws(ScheduleError) {
                    let schedule = try await schedules.control(id: id, control)
                    let partition = ScheduleRecord.partition(of: id, partitions: schedules.placement.partitions)
                    return JSONBody.response(views([.init(schedule: schedule, partition: partition, local: false)])[0])
                } catch {
                    throw TaskRoutes.apiError(error)
                }
            }
        }
    }

    /// `PUT /schedules/<id>`: the body of a scheduled `POST /tasks/generate`
    /// (an `"id"` in it, if any, must be the same); `on_task` runs on it.
    private func put(id: String, _ request: Request, _ context: BasicRequestContext) async throws -> Response {
        var request = request
        let buffer = try await request.collectBody(upTo: maxBodyBytes)
        let posted = try TaskRequest.parse(Data(buffer: buffer))
        guard let kind = posted.schedule else { throw APIError(.badRequest, "give one of the fields at, after, every, cron") }
        if let other = posted.id, other != id { throw APIError(.badRequest, "field 'id' ('\(other.prefix(64))') differs from the path's ('\(id.prefix(64))')") }
        let accepted = try await script.acceptPosted(posted.task, logger: context.logger)
        do throws(ScheduleError) {
            let put = try await schedules.put(id: id, .init(task: accepted, kind: kind, policy: posted.policy))
            let partition = ScheduleRecord.partition(of: id, partitions: schedules.placement.partitions)
            return JSONBody.response(status: put.created ? .created : .ok,
                                     views([.init(schedule: put.schedule, partition: partition, local: false)])[0])
        } catch {
            throw TaskRoutes.apiError(error)
        }
    }

    private func views(_ listed: [ScheduleStore.Listed]) -> [ScheduleView] {
        let owners = cluster.scheduleOwners(Array(Set(listed.filter { !$0.local }.map(\.partition))))
        let owned = schedules.ownership.live
        return listed.map { item in
            let local = item.local || owned.contains(item.partition)
            return ScheduleView(item.schedule, owner: local ? cluster.identity.id : owners[item.partition])
        }
    }

    /// A query filter that must be one of `allowed` (nil when absent).
    private static func filter(_ request: Request, _ name: String, _ allowed: [String]) throws -> String? {
        guard let value = request.uri.queryParameters.get(name) else { return nil }
        guard allowed.contains(value) else {
            throw APIError(.badRequest, "\(name) must be one of \(allowed.joined(separator: ", ")), got '\(value.prefix(64))'")
        }
        return value
    }
}

/// A schedule as `/schedules` shows it.
struct ScheduleView: Encodable, Sendable, Equatable {
    let id: String
    let source: String
    /// `active` or `paused`.
    let state: String
    let kind: String
    let at: String?
    let after: String?
    let every: String?
    let cron: String?
    let timezone: String?
    let catchup: String
    let jitter: String?
    let start: String?
    let end: String?
    let limit: Int64?
    let topic: String
    let message: String
    let key: String?
    let headers: [String: String]?
    let next_due: String?
    let last_fire: String?
    let last_fire_delay_ms: Int64?
    let fires: Int64
    let misses: Int64
    let trigger_pending: Bool
    let owner: String?

    init(_ schedule: Schedule, owner: String?) {
        id = schedule.id
        source = (schedule.source ?? .api).rawValue
        state = schedule.isPaused ? "paused" : "active"
        kind = schedule.kind.name
        let fields = schedule.kind.fields
        (at, after, every, cron, timezone) = (fields["at"], fields["after"], fields["every"], fields["cron"], fields["timezone"])
        catchup = schedule.policy.rawValue
        jitter = schedule.jitterMs.map(ScheduleDuration.format)
        start = schedule.startMs.map(RFC3339.format)
        end = schedule.endMs.map(RFC3339.format)
        limit = schedule.limit
        topic = schedule.task.topic
        message = schedule.task.message
        key = schedule.task.key
        headers = schedule.task.headers
        next_due = schedule.isPaused ? nil : RFC3339.format(schedule.nextDueMs)
        last_fire = schedule.lastFiredAtMs.map(RFC3339.format)
        last_fire_delay_ms = schedule.lastFireDelayMs
        fires = schedule.fires
        misses = schedule.misses ?? 0
        trigger_pending = schedule.triggerPending
        self.owner = owner
    }
}
