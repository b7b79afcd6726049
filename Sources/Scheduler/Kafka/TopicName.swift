/// Kafka's rules for topic names: 1 to 249 characters from `[a-zA-Z0-9._-]`,
/// and neither `.` nor `..`.
public enum TopicName {
    /// Why `name` is not a legal topic name, or nil if it is.
    public static func problem(_ name: String) -> String? {
        if name.isEmpty { return "topic name must not be empty" }
        if name.utf8.count > 249 { return "topic name is \(name.utf8.count) characters long; the limit is 249" }
        if name == "." || name == ".." { return "topic name must not be '.' or '..'" }
        let allowed = name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2E || byte == 0x5F || byte == 0x2D
        }
        if !allowed { return "topic name '\(name.prefix(80))' may only contain a-z, A-Z, 0-9, '.', '_' and '-'" }
        return nil
    }
}
