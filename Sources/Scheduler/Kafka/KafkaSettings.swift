import CRdKafka

/// Builds an `rd_kafka_conf_t` from string properties, as documented in
/// librdkafka's CONFIGURATION.md. Each rejected property becomes a
/// `KafkaConfigError` naming it.
enum KafkaSettings {
    /// Returns a new configuration object; the caller passes it to `rd_kafka_new`
    /// (which takes ownership) or destroys it.
    static func makeConf(_ properties: [String: String]) throws -> OpaquePointer {
        guard let conf = rd_kafka_conf_new() else {
            throw KafkaError(code: -1, message: "rd_kafka_conf_new failed")
        }
        // Sorted so that errors are reported in a stable order.
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            var errstr = [CChar](repeating: 0, count: 512)
            let result = rd_kafka_conf_set(conf, key, value, &errstr, errstr.count)
            if result != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw KafkaConfigError(property: key, message: String(cString: errstr))
            }
        }
        return conf
    }

    /// Creates a client handle of `type`, consuming `conf` on success and failure.
    static func makeHandle(_ type: rd_kafka_type_t, conf: OpaquePointer) throws -> OpaquePointer {
        var errstr = [CChar](repeating: 0, count: 512)
        guard let handle = rd_kafka_new(type, conf, &errstr, errstr.count) else {
            // rd_kafka_new only takes ownership of conf on success.
            rd_kafka_conf_destroy(conf)
            throw KafkaError(code: -1, message: "rd_kafka_new: \(String(cString: errstr))")
        }
        return handle
    }

    /// Routes librdkafka's own log lines into swift-log instead of stderr.
    static func routeLogs(_ conf: OpaquePointer) {
        rd_kafka_conf_set_log_cb(conf) { rk, level, facility, text in
            let name = rk.map { String(cString: rd_kafka_name($0)) } ?? "rdkafka"
            let line = "\(facility.map { String(cString: $0) } ?? ""): \(text.map { String(cString: $0) } ?? "")"
            // syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug.
            switch level {
            case ...3: KafkaLog.logger.error("\(line)", metadata: [LogKey.client: "\(name)"])
            case 4: KafkaLog.logger.warning("\(line)", metadata: [LogKey.client: "\(name)"])
            case 5...6: KafkaLog.logger.info("\(line)", metadata: [LogKey.client: "\(name)"])
            default: KafkaLog.logger.debug("\(line)", metadata: [LogKey.client: "\(name)"])
            }
        }
    }
}

/// An `rd_kafka_t` pointer that may cross threads.
///
/// Safe because librdkafka's client handles are thread-safe (INTRODUCTION.md,
/// "Threads and callbacks"); the owner still destroys the handle exactly once.
struct SendableHandle: @unchecked Sendable {
    let raw: OpaquePointer
}
