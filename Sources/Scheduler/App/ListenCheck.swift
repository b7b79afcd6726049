import Foundation

/// `[api] listen` cannot be bound: another daemon (or anything else) holds
/// the address, or the host does not resolve to a local address.
public struct ListenError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The configured `host:port`.
    public var address: String
    /// What went wrong, e.g. "address already in use (errno 98)".
    public var reason: String

    public var description: String {
        "[api] listen = \"\(address)\": cannot bind: \(reason); stop what holds it or set another [api] listen"
    }
}

/// Tests the API's address before the daemon starts anything else, so a
/// second daemon with the port taken fails with one line naming the address
/// and the key, instead of connecting to Kafka first and failing in the HTTP
/// server's bind after a screen of librdkafka lines.
///
/// The address is bound and released at once: Hummingbird binds it again a
/// moment later (a third process could take it in between; then the server's
/// own bind error stops the daemon, as before).
enum ListenCheck {
    /// Throws `ListenError` when `host:port` cannot be bound. Port 0 (any
    /// free port) is not tested.
    static func check(host: String, port: Int, address: String) throws {
        guard port != 0 else { return }
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        let resolved = getaddrinfo(host, String(port), &hints, &found)
        guard resolved == 0, let first = found else {
            throw ListenError(address: address, reason: "host '\(host)' does not resolve (\(String(cString: gai_strerror(resolved))))")
        }
        defer { freeaddrinfo(found) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { throw ListenError(address: address, reason: Self.errnoText()) }
        defer { close(fd) }
        // As the server sets it: a port left in TIME_WAIT by a daemon just
        // stopped is free to bind, one in LISTEN is not.
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) != 0 {
            throw ListenError(address: address, reason: Self.errnoText())
        }
    }

    private static func errnoText() -> String {
        let code = errno
        return "\(String(cString: strerror(code)).lowercased()) (errno \(code))"
    }
}
