import CLua

/// A Lua state made as the library makes a worker's (its allocator with a
/// memory cap, so the budget hook finds its control block), for the
/// benchmark's measurements of the Lua side alone. Used on one thread only.
final class BenchLuaState {
    let state: OpaquePointer
    private let control: UnsafeMutablePointer<clua_control>

    init(memoryLimit: Int) throws {
        control = UnsafeMutablePointer<clua_control>.allocate(capacity: 1)
        control.initialize(to: clua_control())
        control.pointee.limit = memoryLimit
        guard let state = clua_newstate_limited(control) else {
            control.deallocate()
            throw BenchmarkError("no Lua state")
        }
        self.state = state
    }

    deinit {
        lua_close(state)  // before the control block its allocator uses
        control.deallocate()
    }
}
