import CMalloc
import Foundation
@_spi(Benchmark) import Scheduler

/// The memory one schedule takes in its owner's timer table (the entry, the
/// schedule and its task, its heap entry), counted while the table is alive:
/// the heap bytes in use (glibc's `mallinfo2`: `uordblks` plus `hblkhd`,
/// the mmap-ed blocks) before and after building it, at two sizes, so the
/// slope leaves out what does not grow with the count. The growth of the
/// resident set is printed beside it as a cross-check; it is only
/// meaningful in a fresh process (after the throughput phases freed their
/// buffers, malloc reuses resident pages and it reads 0, which is what the
/// benchmark used to print).
enum ScheduleMemory {
    struct Size: Sendable {
        let count: Int
        let heapBytes: Int
        let residentBytes: Int
        var heapPerSchedule: Double { Double(heapBytes) / Double(count) }
        var residentPerSchedule: Double { Double(residentBytes) / Double(count) }
    }

    struct Measured: Sendable {
        let sizes: [Size]
        /// Heap bytes per added schedule between the two sizes.
        var slope: Double {
            guard let small = sizes.first, let large = sizes.last, large.count > small.count else { return 0 }
            return Double(large.heapBytes - small.heapBytes) / Double(large.count - small.count)
        }
    }

    /// Builds a table of each size in turn (freeing the previous one first)
    /// and measures it while it is alive.
    static func measure(sizes: [Int] = [50_000, 100_000]) -> Measured {
        Measured(sizes: sizes.map { count in
            let heap = heapInUse(), resident = FireDelayBenchmark.residentBytes()
            let table = ScheduleRig.table(ofOneShots: count)
            let size = Size(count: ScheduleRig.count(of: table), heapBytes: heapInUse() - heap,
                            residentBytes: FireDelayBenchmark.residentBytes() - resident)
            withExtendedLifetime(table) {}
            return size
        })
    }

    /// Bytes malloc has handed out and not had back, in every arena and in mmap-ed blocks.
    static func heapInUse() -> Int {
        let info = mallinfo2()
        return Int(info.uordblks + info.hblkhd)
    }

    static func describe(_ measured: Measured) -> String {
        let sizes = measured.sizes.map { size in
            String(format: "%d schedules: heap +%.1f MB (%.0f B each), resident +%.1f MB (%.0f B each)",
                   size.count, Double(size.heapBytes) / 1e6, size.heapPerSchedule, Double(size.residentBytes) / 1e6, size.residentPerSchedule)
        }
        return String(format: "schedules: timer table memory (one-shots, 32-byte message, measured while alive): %.0f bytes of heap per schedule (slope); ", measured.slope)
            + sizes.joined(separator: "; ")
    }
}
