/// A task to publish: the body of `POST /tasks/generate`, an entry of
/// `generate()`'s answer, or a `scheduler.emit` from a script.
public struct TaskSpec: Sendable, Equatable, Codable {
    /// Destination topic.
    public var topic: String
    /// Message payload.
    public var message: String
    /// Partition key: tasks with one key keep their order in one partition.
    public var key: String?
    /// Kafka record headers.
    public var headers: [String: String]?

    /// Creates a task.
    public init(topic: String, message: String, key: String? = nil, headers: [String: String]? = nil) {
        self.topic = topic
        self.message = message
        self.key = key
        self.headers = headers
    }

    /// What this task holds in memory, as `CallOutput` counts it.
    var heldBytes: Int {
        topic.utf8.count + message.utf8.count + (key?.utf8.count ?? 0)
            + (headers ?? [:]).reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
    }

    /// The Kafka message for this task. Headers are sent sorted by name so the
    /// record is the same whatever order a dictionary yields.
    var outgoing: OutgoingMessage {
        OutgoingMessage(
            topic: topic,
            key: key.map { Array($0.utf8) },
            value: Array(message.utf8),
            headers: (headers ?? [:]).sorted { $0.key < $1.key }.map { KafkaHeader($0.key, $0.value) })
    }
}

extension TaskSpec {
    /// A task passed to `scheduler.emit` in `generate.lua` (published as
    /// text, like every API or generated task).
    init(emitted: OutgoingMessage) {
        self.init(
            topic: emitted.topic, message: String(decoding: emitted.value, as: UTF8.self),
            key: emitted.key.map { String(decoding: $0, as: UTF8.self) },
            headers: emitted.headers.isEmpty ? nil : Dictionary(emitted.headers.map { ($0.name, $0.text ?? "") }) { $1 })
    }

    /// Reads a task from a Lua table `{topic=, message=, key=?, headers=?}`;
    /// throws a message saying which field is wrong.
    init(lua value: LuaValue) throws(TaskShapeError) {
        guard case .table = value else { throw TaskShapeError("a task must be a table, got \(value.typeName)") }
        guard let topic = value["topic"].stringValue, case .string = value["topic"] else {
            throw TaskShapeError("task field 'topic' must be a string, got \(value["topic"].typeName)")
        }
        guard let message = value["message"].stringValue else {
            throw TaskShapeError("task field 'message' must be a string, got \(value["message"].typeName)")
        }
        var key: String?
        switch value["key"] {
        case .nil: key = nil
        case let other:
            guard let text = other.stringValue else {
                throw TaskShapeError("task field 'key' must be a string, got \(other.typeName)")
            }
            key = text
        }
        var headers: [String: String]?
        switch value["headers"] {
        case .nil: headers = nil
        case .table(let fields):
            var result: [String: String] = [:]
            for (name, item) in fields {
                guard case .string(let n) = name, let text = item.stringValue else {
                    throw TaskShapeError("task field 'headers' must map strings to strings")
                }
                result[n] = text
            }
            headers = result
        case let other:
            throw TaskShapeError("task field 'headers' must be a table, got \(other.typeName)")
        }
        self.init(topic: topic, message: message, key: key, headers: headers)
    }

    /// The task as a Lua table.
    var luaValue: LuaValue {
        var fields: [LuaValue: LuaValue] = ["topic": .string(topic), "message": .string(message)]
        if let key { fields["key"] = .string(key) }
        if let headers {
            fields["headers"] = .table(Dictionary(uniqueKeysWithValues: headers.map { (LuaValue.string($0.key), LuaValue.string($0.value)) }))
        }
        return .table(fields)
    }
}

/// A script returned a task of the wrong shape.
public struct TaskShapeError: Error, CustomStringConvertible, Sendable {
    /// What is wrong.
    public let description: String
    init(_ description: String) { self.description = description }
}
