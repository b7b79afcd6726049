import CLua

/// What a feature plugs into every script's `scheduler` table.
///
/// `Lua/` knows none of the features. Each brings its raw C bindings (they
/// fill the shim's slots after the core's `_emit`, `_log`, `_yield`,
/// `_match`, `_charge`), the Lua that wraps them into the functions scripts
/// call, and the value its bindings read back (`ScriptBindings.context(_:)`).
/// Schedules are one: `scheduler.schedule` and `scheduler.cancel`
/// (`Schedule/ScriptBindings+Schedule.swift`).
public struct ScriptFeature: Sendable {
    /// A raw binding: its name in the `scheduler` table (a literal: the C
    /// side keeps the pointer for the state's life) and its function.
    struct Binding: @unchecked Sendable {
        // Safe because both are immutable: a C function pointer and a
        // pointer into a string literal, neither ever freed.
        let name: StaticString
        let function: clua_binding
    }

    let bindings: [Binding]
    /// Lua run in every state after the core prelude: wraps or hides the
    /// raw bindings.
    let prelude: String
    /// What the bindings read back in the daemon's own states (`generate.lua`),
    /// nil where the feature is off (its functions then raise saying so).
    let context: (any Sendable)?
    /// The same in worker states (`process.lua`).
    let workerContext: (any Sendable)?

    init(bindings: [Binding], prelude: String, context: (any Sendable)?, workerContext: (any Sendable)?) {
        self.bindings = bindings
        self.prelude = prelude
        self.context = context
        self.workerContext = workerContext
    }

    /// The feature as worker states see it.
    var inWorkers: ScriptFeature { ScriptFeature(bindings: bindings, prelude: prelude, context: workerContext, workerContext: workerContext) }
    /// The feature's functions present but off (`rotate.lua`, validation).
    var off: ScriptFeature { ScriptFeature(bindings: bindings, prelude: prelude, context: nil, workerContext: nil) }
}
