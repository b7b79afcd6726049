import Synchronization

/// Values made once per key and then kept: metric handles per label set,
/// delivery sinks per topic. The one cache of this kind in the library, so
/// each user says only what its key is and how a value is made.
///
/// `make` runs inside the cache's lock, so each key's value is made once;
/// it must not reach back into the same cache.
final class HandleCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    // `Mutex` is `Sendable` whatever it guards: the dictionary is only ever
    // reached inside `withLock`, by one thread at a time.
    private let entries = Mutex<[Key: Value]>([:])

    init() {}

    /// The value kept for `key`, made by `make` the first time.
    func value(for key: Key, make: () -> Value) -> Value {
        entries.withLock { all in
            if let existing = all[key] { return existing }
            let made = make()
            all[key] = made
            return made
        }
    }

    /// Forgets `key`, returning what was kept for it.
    func remove(_ key: Key) -> Value? {
        entries.withLock { $0.removeValue(forKey: key) }
    }

    /// Every key and value kept now.
    var snapshot: [Key: Value] {
        entries.withLock { $0 }
    }
}
