/// The script catalog's events as metrics: `scheduler_lua_errors_total`,
/// the Lua call histogram and `scheduler_script_reloads_total`.
extension SchedulerMetrics: ScriptEvents {
    public func scriptFailed(script: String, hook: String) {
        counter(MetricName.luaErrors, [("script", script), ("hook", hook)]).increment()
    }

    public func scriptCalled(script: String, hook: String, duration: Duration) {
        luaCalls.record(script: script, hook: hook, duration)
    }

    public func scriptsReloaded(ok: Bool) {
        counter(MetricName.reloads, [("result", ok ? "ok" : "failed")]).increment()
    }
}
