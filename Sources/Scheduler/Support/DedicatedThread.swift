import Foundation

/// One operating-system thread that runs submitted jobs one after another.
///
/// Two rules of this project need it: a `lua_State` must live on one thread for
/// its whole life, and blocking librdkafka calls must never run on Swift's
/// shared concurrency pool. Jobs run in submission order; `run` suspends the
/// caller (without blocking a pool thread) until its job has finished.
public final class DedicatedThread: @unchecked Sendable {
    // Safe because `jobs` and `stopping` are only touched under `condition`;
    // the job closures themselves only ever run on `thread`.
    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []
    private var stopping = false
    private let finished = DispatchSemaphore(value: 0)
    /// The thread's name, as shown by debuggers and `top -H`.
    public let name: String

    /// Starts a thread called `name`.
    public init(name: String) {
        self.name = name
        let thread = Thread { [condition = self.condition, unowned(unsafe) me = self] in
            // Named from inside, cut to Linux's 15 bytes, through the
            // kernel's own file for the calling thread: Foundation applies a
            // name only once `start()` has recorded the new thread, which
            // may come after this block runs, and never a longer name.
            Thread.current.name = name
            try? Self.osThreadName(name).write(toFile: "/proc/thread-self/comm", atomically: false, encoding: .utf8)
            me.loop(condition)
        }
        thread.start()
    }

    /// `name` cut to the 15 bytes Linux keeps, at a character boundary
    /// (the tail, which tells threads of one kind apart, is kept).
    static func osThreadName(_ name: String) -> String {
        var kept = ""
        for character in name.reversed() {
            guard kept.utf8.count + character.utf8.count <= 15 else { break }
            kept.insert(character, at: kept.startIndex)
        }
        return kept
    }

    private func loop(_ condition: NSCondition) {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping { condition.wait() }
            if jobs.isEmpty && stopping {
                condition.unlock()
                break
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
        finished.signal()
    }

    /// Queues `body` without waiting for it. Returns false, dropping `body`,
    /// once `stop()` was called: nothing would ever run it.
    @discardableResult
    public func submit(_ body: @escaping @Sendable () -> Void) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !stopping else { return false }
        jobs.append(body)
        condition.signal()
        return true
    }

    /// Runs `body` on this thread and returns its result. Throws
    /// `DedicatedThreadStopped` if the thread was stopped (the job never runs).
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
            let queued = submit {
                do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
            }
            if !queued { continuation.resume(throwing: DedicatedThreadStopped(thread: name)) }
        }
    }

    /// Runs `body`, which cannot fail, on this thread and returns its result;
    /// throws only if the thread was stopped (the job never runs).
    public func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async throws(DedicatedThreadStopped) -> T {
        let outcome = await withCheckedContinuation { (continuation: CheckedContinuation<T?, Never>) in
            let queued = submit { continuation.resume(returning: body()) }
            if !queued { continuation.resume(returning: nil) }
        }
        guard let outcome else { throw DedicatedThreadStopped(thread: name) }
        return outcome
    }

    /// Runs `body` on this thread; nil if it has not finished within `limit`
    /// (it then still runs to its end, unobserved) or the thread was stopped
    /// (it never runs). For shutdown paths that must not wait for ever on a
    /// thread that may be stuck.
    public func run<T: Sendable>(within limit: Duration, _ body: @escaping @Sendable () -> T) async -> T? {
        await withCheckedContinuation { (continuation: CheckedContinuation<T?, Never>) in
            let once = OneShot(continuation)
            guard submit({ once.resume(body()) }) else { return once.resume(nil) }
            once.resume(nil, after: limit)
        }
    }

    /// Lets the queued jobs finish, then ends the thread and waits for it.
    /// Must not be called from the thread itself.
    public func stop() {
        condition.lock()
        let already = stopping
        stopping = true
        condition.signal()
        condition.unlock()
        if !already { finished.wait() }
    }

    deinit {
        stop()
    }
}

/// A job given to a `DedicatedThread` after `stop()`: it was not run.
public struct DedicatedThreadStopped: Error, CustomStringConvertible, Sendable {
    /// The thread's name.
    public let thread: String
    public var description: String { "thread \(thread) is stopped; the job was not run" }
}

/// A continuation resumed by whichever of several paths comes first.
final class OneShot<T: Sendable>: Sendable {
    private let slot: LockedValue<CheckedContinuation<T, Never>?>

    init(_ continuation: CheckedContinuation<T, Never>) {
        slot = LockedValue(continuation)
    }

    /// Resumes the continuation unless that already happened.
    func resume(_ value: T) {
        let continuation = slot.withLock { slot in
            defer { slot = nil }
            return slot
        }
        continuation?.resume(returning: value)
    }

    /// A deadline: resumes with `value` after `delay` unless something
    /// resumed the continuation first.
    func resume(_ value: T, after delay: Duration) {
        DispatchQueue.global().asyncAfter(deadline: .now() + delay.seconds) { [self] in resume(value) }
    }
}

extension Duration {
    /// The duration in seconds, as a `Double` (for Dispatch deadlines).
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
