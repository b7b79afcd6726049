import Testing
@testable import Scheduler

/// The rules around rebalances, refused commits and stopping (each of the
/// issue's defects has a rule here that fails when the fix is taken out).
@Suite("Rotation rules under rebalances and faults (RotationState, no broker)", .sharesMachine)
struct RotationFaultTests {
    @Test("a revoked partition is neither granted nor renewed, and released once no lease holds it", arguments: [
        Rule("revoke during a handoff: both leases stop, the partition is released after the last", [
            (.assign(["A0"]), ["grant w1 A0"]),
            (.boundary(1), ["grant w0 A0 from w1"]),
            (.revoke(["A0"], ticket: 1), ["stop w1 revoked", "stop w0 revoked"]),
            (.tick(afterMs: 50), []),
            (.end(1, .revoked), []),
            (.end(0, .revoked), ["release #1 A0"]),
            (.tick(afterMs: 50), []),
        ]),
        Rule("revoke during a handoff, the successor reporting first: nobody is given the partition meanwhile", [
            (.assign(["A0"]), ["grant w1 A0"]),
            (.boundary(1), ["grant w0 A0 from w1"]),
            (.revoke(["A0"], ticket: 1), ["stop w1 revoked", "stop w0 revoked"]),
            (.end(0, .revoked), []),
            (.tick(afterMs: 50), []),
            (.end(1, .revoked), ["release #1 A0"]),
        ]),
        Rule("revoke during overtime: a slice boundary reported before the stop was seen is not renewed", workers: 1, [
            (.assign(["A0"]), ["grant w0 A0"]),
            (.revoke(["A0"], ticket: 1), ["stop w0 revoked"]),
            (.boundary(0), []),
            (.end(0, .revoked), ["release #1 A0"]),
        ]),
        Rule("revoke during overtime: nor handed on to an idle worker", [
            (.assign(["A0"]), ["grant w1 A0"]),
            (.revoke(["A0"], ticket: 1), ["stop w1 revoked"]),
            (.boundary(1), []),
            (.tick(afterMs: 50), []),
            (.end(1, .revoked), ["release #1 A0"]),
        ]),
        Rule("revoking one partition leaves the others working; nothing held is released at once", [
            (.assign(["A0", "A1", "A2"]), ["grant w1 A0", "grant w0 A1"]),
            (.revoke(["A2"], ticket: 1), ["release #1 A2"]),
            (.revoke(["A1"], ticket: 2), ["stop w0 revoked"]),
            (.end(0, .revoked), ["release #2 A1"]),
            (.boundary(1), ["grant w0 A0 from w1"]),
        ]),
    ])
    func revocations(_ rule: Rule) { rule.run() }

    @Test("refused commits are sent again", arguments: [
        Rule("a refused commit of a partition nobody holds is sent again at the next tick", workers: 1, [
            (.assignIdle(["A0"]), []),
            (.position("A0", 10, 10), []),
            (.tick(afterMs: 1000), []),
            (.position("A0", 12, 10), []),
            (.tick(afterMs: 1000), ["commit A0@12"]),
            (.tick(afterMs: 1000), []),
            (.refused(rebalance: false), ["resend A0"]),
            (.tick(afterMs: 1000), ["commit A0@12"]),
        ]),
        Rule("idle commits go out at most once a second", workers: 1, [
            (.assignIdle(["A0"]), []),
            (.position("A0", 5, -1), []),
            (.tick(afterMs: 10), ["commit A0@5"]),
            (.position("A0", 6, 5), []),
            (.tick(afterMs: 10), []),
            (.tick(afterMs: 1000), ["commit A0@6"]),
        ]),
        Rule("cooperative: commits held for over a fifth of the session timeout (2 s) pause the leases too, until the next assignment", eager: false, [
            (.assign(["A0", "A1"]), ["grant w1 A0", "grant w0 A1"]),
            (.refused(rebalance: true), ["resend A0 A1", "hold commits", "commits held"]),
            (.tick(afterMs: 1900), []),
            (.tick(afterMs: 200), ["paused", "stop w0 revoked", "stop w1 revoked"]),
            (.end(0, .revoked), []),
            (.end(1, .revoked), []),
            (.assignIdle([]), ["resume commits", "grant w1 A0", "grant w0 A1"]),
        ]),
        Rule("cooperative: a refusal for a rebalance holds commits; the leases go on, and the revoked partition stops", eager: false, [
            (.assign(["A0", "A1"]), ["grant w1 A0", "grant w0 A1"]),
            (.refused(rebalance: true), ["resend A0 A1", "hold commits", "commits held"]),
            (.revoke(["A1"], ticket: 1), ["stop w0 revoked"]),
            (.end(0, .revoked), ["release #1 A1"]),
            (.assignIdle([]), []),
            (.assignIdle([]), ["resume commits"]),
        ]),
        Rule("cooperative: having given partitions up, commits wait for the next round's assignment, not the one that comes with the revocation", eager: false, [
            (.assign(["A0", "A1"]), ["grant w1 A0", "grant w0 A1"]),
            (.revoke(["A1"], ticket: 1), ["hold commits", "commits held", "stop w0 revoked"]),
            (.end(0, .revoked), ["release #1 A1"]),
            (.assignIdle([]), []),
            (.boundary(1), ["grant w0 A0 from w1"]),
            (.assignIdle([]), ["resume commits"]),
        ]),
        Rule("cooperative: partitions lost (no generation left) are followed by the next round at once", eager: false, [
            (.assign(["A0"]), ["grant w1 A0"]),
            (.revoke(["A0"], ticket: 1, lost: true), ["hold commits", "commits held", "stop w1 revoked"]),
            (.end(1, .revoked), ["release #1 A0"]),
            (.assign(["A0"]), ["resume commits", "grant w0 A0"]),
        ]),
        Rule("cooperative: partitions whose assign call librdkafka refused are dropped without holding commits (no round follows to end the hold)", eager: false, [
            (.assign(["A0", "A1"]), ["grant w1 A0", "grant w0 A1"]),
            (.revoke(["A1"], ticket: 1, lost: true, assignFailed: true), ["stop w0 revoked"]),
            (.end(0, .revoked), ["release #1 A1"]),
            (.assignIdle([]), []),
        ]),
        Rule("commits wait while the group rebalances and go out as soon as it assigned again (even nothing)", eager: false, [
            (.assignIdle(["A0"]), []),
            (.position("A0", 7, 5), []),
            (.refused(rebalance: true), ["resend A0", "hold commits", "commits held"]),
            (.tick(afterMs: 1000), []),
            (.assignIdle([]), ["resume commits", "commit A0@7"]),
            (.tick(afterMs: 10), []),
        ]),
        Rule("held commits go out at the assignment even right after an idle commit", eager: false, [
            (.assignIdle(["A0"]), []),
            (.position("A0", 7, 5), []),
            (.tick(afterMs: 1000), ["commit A0@7"]),
            (.position("A0", 9, 5), []),
            (.refused(rebalance: true), ["resend A0", "hold commits", "commits held"]),
            (.assignIdle([]), ["resume commits", "commit A0@9"]),
        ]),
    ])
    func refusedCommits(_ rule: Rule) { rule.run() }

    @Test("a refusal for a rebalance pauses every lease and commit until the next assignment, or gives up after 15 s", arguments: [
        Rule("paused until the next assignment", [
            (.assign(["A0", "A1"]), ["grant w1 A0", "grant w0 A1"]),
            (.refused(rebalance: true), ["resend A0 A1", "hold commits", "paused", "stop w0 revoked", "stop w1 revoked"]),
            (.end(0, .revoked), []),
            (.end(1, .revoked), []),
            (.tick(afterMs: 100), []),
            (.assign(["A2"]), ["resume commits", "grant w1 A2", "grant w0 A0"]),
        ]),
        Rule("a member with no assignment: the pause gives up after 15 s", workers: 1, [
            (.assign(["A0"]), ["grant w0 A0"]),
            (.refused(rebalance: true), ["resend A0", "hold commits", "paused", "stop w0 revoked"]),
            (.end(0, .revoked), []),
            (.refused(rebalance: true), ["resend A0"]),
            (.tick(afterMs: 14_000), []),
            (.tick(afterMs: 1001), ["gave up", "resume commits", "grant w0 A0"]),
        ]),
    ])
    func pauses(_ rule: Rule) { rule.run() }

    @Test("stopping ends every lease, grants nothing, and names the slots to close once all have ended", arguments: [
        Rule("stop while a grant is pending: it is dropped", [
            (.assign(["A0", "A1", "A2"]), ["grant w1 A0", "grant w0 A1"]),
            (.answer(.pick(worker: "g-1", topic: "A", partition: 2)), []),
            (.boundary(1), ["stop w1 slice"]),
            (.stop, ["stop w0 shutdown", "stop w1 shutdown"]),
            (.end(1, .shutdown), []),
            (.tick(afterMs: 50), []),
            (.end(0, .shutdown), ["quiesced A0 A1 A2"]),
        ]),
        Rule("stop during a handoff: both leases end first", [
            (.assign(["A0"]), ["grant w1 A0"]),
            (.boundary(1), ["grant w0 A0 from w1"]),
            (.stop, ["stop w0 shutdown", "stop w1 shutdown"]),
            (.end(1, .slice), []),
            (.end(0, .shutdown), ["quiesced A0"]),
        ]),
        Rule("stop with nothing running is done at once", [
            (.assignIdle(["A0"]), []),
            (.stop, ["quiesced A0"]),
            (.refused(rebalance: true), ["resend A0"]),
        ]),
    ])
    func stopping(_ rule: Rule) { rule.run() }
}
