import Foundation
import Hummingbird
import Logging

/// The seed's task API, around the task pool and the schedules:
/// `POST /tasks/generate`, `GET /tasks`, `DELETE /tasks[/<index or id>]`,
/// and `GET /tasks/pending`.
struct TaskRoutes: Sendable {
    let publisher: TaskPublisher
    let pool: TaskPoolStore
    let schedules: ScheduleStore
    let cluster: ClusterBook
    let script: GenerateScript
    let maxBodyBytes: Int

    func add(to router: Router<BasicRequestContext>) {
        router.post("/tasks/generate") { request, context in try await generate(request, context) }
        router.get("/tasks") { request, _ in
            do {
                // The seed's shape: topic and message, key and headers only
                // when set; then every schedule of the cluster, earliest due
                // first (`?limit=N`: the first N schedules).
                let limit = try Self.scheduleLimit(request)
                let tasks = try await pool.currentEntries().map(TaskListEntry.init(pool:))
                return JSONBody.response(tasks + scheduleEntries(limit: limit))
            } catch let error as PoolError {
                throw Self.apiError(error)
            }
        }
        router.get("/tasks/pending") { _, _ in
            JSONBody.response(publisher.pendingTasks.map { PendingTaskView(topic: $0.topic, message: $0.message) })
        }
        router.delete("/tasks/:index") { _, context in
            let text = context.parameters.get("index") ?? ""
            if text.hasPrefix("s-") {
                do {
                    try await schedules.cancel(id: text)
                    return JSONBody.response(["cancelled": text])
                } catch let error as ScheduleError {
                    throw Self.apiError(error)
                }
            }
            do {
                switch PoolTaskReference(text) {
                case .index(let index): return JSONBody.response(try await pool.remove(at: index))
                case .id(let id): return JSONBody.response(try await pool.remove(id: id))
                case nil:
                    throw APIError(.badRequest, "expected a pool task's id or index (a position in GET /tasks: a non-negative integer) or a schedule id (s-...), got '\(text.prefix(64))'")
                }
            } catch let error as PoolError {
                throw Self.apiError(error)
            }
        }
        router.delete("/tasks") { _, _ in
            do {
                return JSONBody.response(RemovedView(removed: try await pool.removeAll()))
            } catch let error as PoolError {
                throw Self.apiError(error)
            }
        }
    }

    /// Every schedule of the cluster with its owner: this daemon for the
    /// partitions it holds, else the daemon whose latest report lists the partition.
    private func scheduleEntries(limit: Int) -> [TaskListEntry] {
        let listed = schedules.clusterSchedules(limit: limit)
        let owners = cluster.scheduleOwners(Array(Set(listed.filter { !$0.local }.map(\.partition))))
        return listed.map { TaskListEntry(schedule: $0.schedule, owner: $0.local ? cluster.identity.id : owners[$0.partition]) }
    }

    /// `GET /tasks?limit=N`: how many schedules to list (all without it).
    static func scheduleLimit(_ request: Request) throws -> Int {
        guard let text = request.uri.queryParameters.get("limit") else { return .max }
        guard let limit = Int(text), limit >= 0 else {
            throw APIError(.badRequest, "limit must be a non-negative integer (how many schedules to list), got '\(text.prefix(64))'")
        }
        return limit
    }

    /// Answers `"Success"` only after the broker acknowledged the task (and,
    /// for a pooled task, its pool record).
    private func generate(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        if let type = request.headers[.contentType]?.lowercased(), !Self.isJSON(type) {
            throw APIError(.unsupportedMediaType, "Content-Type must be application/json, got '\(type.prefix(100))'")
        }
        var request = request
        let buffer = try await request.collectBody(upTo: maxBodyBytes)
        let posted = try TaskRequest.parse(Data(buffer: buffer))
        let accepted = try await script.acceptPosted(posted.task, logger: context.logger)
        if let kind = posted.schedule, posted.id != nil || !posted.policy.isEmpty {
            let id = posted.id ?? "s-" + UUID().uuidString.lowercased()
            do {
                let put = try await schedules.put(id: id, .init(task: accepted, kind: kind, policy: posted.policy))
                return JSONBody.response(ScheduledView(id: id, next_due: RFC3339.format(put.schedule.nextDueMs), kind: kind.name))
            } catch {
                throw Self.apiError(error)
            }
        }
        if let kind = posted.schedule {
            do {
                let schedule = try await schedules.create(task: accepted, kind: kind)
                return JSONBody.response(ScheduledView(id: schedule.id, next_due: RFC3339.format(schedule.nextDueMs), kind: kind.name))
            } catch {
                throw Self.apiError(error)
            }
        }
        do {
            if posted.once {
                _ = try await publisher.publish(accepted)
            } else {
                _ = try await pool.add(accepted)
            }
        } catch let error as PublishError {
            throw Self.apiError(PoolError.publish(error))
        } catch let error as PoolError {
            throw Self.apiError(error)
        }
        return Self.success
    }

    /// `"Success"`, encoded once: a JSONEncoder per acknowledged post showed in the profile.
    private static let success = Response(
        status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #""Success""#)))

    static func apiError(_ error: PoolError) -> APIError {
        switch error {
        case .loading: APIError(.serviceUnavailable, error.description, headers: [.retryAfter: "1"])
        case .full: APIError(.conflict, error.description)
        case .noSuchTask, .noSuchID: APIError(.notFound, error.description)
        case .publish(let publish):
            switch publish {
            case .invalid(let reason): APIError(.badRequest, reason)
            case .timedOut: APIError(.serviceUnavailable, "Producer timed out.")
            case .backpressure(let reason): APIError(.serviceUnavailable, reason, headers: [.retryAfter: "1"])
            case .kafka(let kafka): APIError(.serviceUnavailable, "could not publish: \(kafka)")
            }
        }
    }

    static func apiError(_ error: ScheduleError) -> APIError {
        switch error {
        case .invalid(let reason): APIError(.badRequest, reason)
        case .full: APIError(.conflict, error.description)
        case .noSuchSchedule: APIError(.notFound, error.description)
        case .publish(let publish): apiError(PoolError.publish(publish))
        case .loading: APIError(.serviceUnavailable, error.description, headers: [.retryAfter: "1"])
        }
    }

    static func isJSON(_ contentType: String) -> Bool {
        // The usual header first: splitting and trimming (Foundation) cost ~4% of a post's CPU.
        if contentType == "application/json" { return true }
        let mime = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        // curl -d sends application/x-www-form-urlencoded unless told otherwise;
        // the body is read as JSON either way.
        return mime == "application/json" || mime.hasSuffix("+json") || mime == "*/*" || mime.isEmpty
            || mime == "text/plain" || mime == "application/x-www-form-urlencoded"
    }
}

/// An entry of `GET /tasks/pending`, shaped like the seed's tasks.
struct PendingTaskView: Encodable {
    let topic: String
    let message: String
}

/// What `DELETE /tasks/<text>` names in the pool: an index (all digits) or
/// an id (a UUID, or `initial-<n>` for a task seeded from generate.lua);
/// nil for anything else. Schedule ids (`s-...`) are told apart before.
enum PoolTaskReference: Equatable {
    case index(Int)
    case id(String)

    init?(_ text: String) {
        if !text.isEmpty, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            guard let index = Int(text) else { return nil }
            self = .index(index)
        } else if UUID(uuidString: text) != nil {
            self = .id(text.lowercased())
        } else if text.hasPrefix("initial-"), let n = Int(text.dropFirst("initial-".count)), n >= 0, String(n) == text.dropFirst("initial-".count) {
            self = .id(text)
        } else {
            return nil
        }
    }
}

/// Body of `DELETE /tasks`.
struct RemovedView: Encodable {
    let removed: Int
}
