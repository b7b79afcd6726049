import Synchronization

/// Whether messages already fetched wait on a partition (lane) of the group
/// that no worker holds and the rules would grant next. The coordinator
/// sets it after every rotation event (`RotationState.fetchedWaiting`); a
/// worker whose own partition has run out reads it to decide how long to
/// wait for more. Fetches can bring a partition's messages one produced
/// batch at a time, so a worker that waited out the full drain wait on its
/// own partition would sit idle while fetched messages pile up elsewhere.
final class FetchedElsewhere: Sendable {
    // Relaxed atomic: a hint read each time a worker's partition runs dry;
    // a stale answer only changes how long that worker waits once.
    private let waiting = Atomic<Bool>(false)

    /// Fetched messages wait on a partition nobody holds.
    var isSet: Bool { waiting.load(ordering: .relaxed) }

    /// Records the rules' answer after an event.
    func set(_ value: Bool) { waiting.store(value, ordering: .relaxed) }
}
