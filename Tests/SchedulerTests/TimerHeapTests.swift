import Testing
@testable import Scheduler

@Suite("Timer heap", .sharesMachine)
struct TimerHeapTests {
    @Test("pops in due order (ties by id) whatever the insertion order", arguments: [1, 2, 3, 4])
    func order(seed: Int) {
        var generator = SeededGenerator(seed: UInt64(seed))
        var heap = TimerHeap()
        var all: [TimerHeap.Entry] = []
        for index in 0..<2000 {
            let entry = TimerHeap.Entry(due: Int64(generator.next() % 500), id: "s\(index)", generation: 0)
            all.append(entry)
            heap.push(entry)
        }
        var popped: [TimerHeap.Entry] = []
        while let entry = heap.pop() { popped.append(entry) }
        #expect(popped == all.sorted { ($0.due, $0.id) < ($1.due, $1.id) })
    }

    @Test("rebuild keeps exactly the live entries and the heap order")
    func rebuild() {
        var heap = TimerHeap()
        for index in 0..<100 { heap.push(TimerHeap.Entry(due: Int64(100 - index), id: "s\(index)", generation: UInt64(index % 3))) }
        heap.rebuild { $0.generation == 0 }
        #expect(heap.count == 34)
        var previous = Int64.min
        while let entry = heap.pop() {
            #expect(entry.generation == 0)
            #expect(entry.due >= previous)
            previous = entry.due
        }
    }
}
