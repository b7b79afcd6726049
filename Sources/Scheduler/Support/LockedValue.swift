import Synchronization

/// A mutex-protected value that can be shared by reference: what a `Mutex`
/// stored in one object cannot be (it is `~Copyable`), e.g. state captured by
/// C callbacks' context, by closures, or handed to several owners.
///
/// The library's shared state uses four tools, nothing else outside
/// `Support/`: `Mutex` (an object's own state), `LockedValue` (the same,
/// shared by reference), `WatchedValue` (state that others wait on: its
/// changes wake them) and `DedicatedThread` / `RetryLoop` (threads). Atomics
/// are kept for the few counters and flags on the message path, where each
/// says why.
final class LockedValue<Value>: Sendable {
    // `Mutex` is `Sendable` for any value it guards: the value is only ever
    // reached inside `withLock`, by one thread at a time.
    private let mutex: Mutex<Value>

    init(_ value: sending Value) {
        mutex = Mutex(value)
    }

    func withLock<T, E: Error>(_ body: (inout sending Value) throws(E) -> sending T) throws(E) -> sending T {
        try mutex.withLock(body)
    }
}
