/// The lane rule of `[[groups]] lanes`: which lane of its partition a
/// message belongs to. A stable hash of the key's bytes (32-bit FNV-1a) modulo
/// the lane count, so a key always lands in the same lane (in every process
/// and across restarts) and per-key order is the lane's order. A message
/// without a key (Kafka's null key) goes to lane 0; an empty key is a key
/// like any other (it hashes to FNV-1a's offset basis).
struct KeyLanes: Sendable, Equatable {
    /// Lanes per partition (at least 1).
    let count: Int

    init(count: Int) {
        self.count = max(1, count)
    }

    /// The lane of a message with `key` (nil: no key).
    func lane(forKey key: UnsafeRawBufferPointer?) -> Int {
        guard count > 1, let key else { return 0 }
        return Int(Self.fnv1a(key) % UInt32(count))
    }

    /// The lane of a message with `key` given as bytes (nil: no key).
    func lane(forKey key: [UInt8]?) -> Int {
        guard let key else { return lane(forKey: nil as UnsafeRawBufferPointer?) }
        return key.withUnsafeBytes { lane(forKey: $0) }
    }

    /// 32-bit FNV-1a: simple, stable across platforms and releases (unlike
    /// Swift's `Hasher`, which is seeded per process).
    static func fnv1a(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var hash: UInt32 = 2_166_136_261
        for byte in bytes {
            hash ^= UInt32(byte)
            hash = hash &* 16_777_619
        }
        return hash
    }
}
