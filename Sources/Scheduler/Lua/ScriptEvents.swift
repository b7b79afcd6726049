/// Where the catalog reports what the scripts did: the daemon's metrics
/// (`SchedulerMetrics`) in production, so `Lua/` counts nothing itself.
public protocol ScriptEvents: Sendable {
    /// A call of `hook` in `script` raised.
    func scriptFailed(script: String, hook: String)
    /// A call of `hook` in `script` (not one per message) took `duration`.
    func scriptCalled(script: String, hook: String, duration: Duration)
    /// A reload ran; `ok` when the new scripts are in force.
    func scriptsReloaded(ok: Bool)
}

/// Reports nowhere: the catalog of a tool or a test that keeps no metrics.
public struct UncountedScriptEvents: ScriptEvents {
    public init() {}
    public func scriptFailed(script: String, hook: String) {}
    public func scriptCalled(script: String, hook: String, duration: Duration) {}
    public func scriptsReloaded(ok: Bool) {}
}
