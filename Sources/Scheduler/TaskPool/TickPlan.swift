/// Which tick the pool's publisher runs next, and when: the rules that keep
/// the tick numbers going on from one publishing daemon to the next.
///
/// The publisher writes a tick record (`PoolTick`) before a tick's
/// publications (`done` false) and after them (`done` true). A daemon that
/// takes over reads the last one: after a finished tick N it runs N + 1, an
/// interval after N was due (at once if that has passed); after a tick N
/// begun and not finished (its publisher died in the middle of it) it runs
/// N again at once, so the tick may be doubled but never lost. A fresh pool
/// starts at tick 1, one interval after the daemon started.
struct TickPlan: Sendable, Equatable {
    /// The tick number passed to `generate()`.
    let tick: Int
    /// When it is due (Unix ms).
    let dueMs: Int64
    /// It repeats a tick the previous publisher began and did not finish.
    let redone: Bool

    /// The first tick of a daemon that was just elected publisher.
    static func takeover(after last: PoolTick?, intervalMs: Int, startedMs: Int64, nowMs: Int64) -> TickPlan {
        guard let last else {
            return TickPlan(tick: 1, dueMs: max(startedMs + Int64(intervalMs), nowMs), redone: false)
        }
        if !last.done { return TickPlan(tick: last.tick, dueMs: nowMs, redone: true) }
        return TickPlan(tick: last.tick + 1, dueMs: max(last.dueMs + Int64(intervalMs), nowMs), redone: false)
    }

    /// The tick after this one, finished at `nowMs`: an interval after this
    /// one was due, or at once if that has passed (ticks missed while a
    /// tick ran long are not made up).
    func next(intervalMs: Int, nowMs: Int64) -> TickPlan {
        TickPlan(tick: tick + 1, dueMs: max(dueMs + Int64(intervalMs), nowMs), redone: false)
    }
}
