/// A Lua 5.4 pattern matcher (the syntax of the reference manual, §6.4.1)
/// that counts its steps, so `string.find` and friends stop when the call's
/// budget is spent instead of backtracking for hours in C.
///
/// Written from the manual's description, not from Lua's source. It works on
/// bytes; positions are 0-based offsets into the subject. Characters are
/// written as hex literals (0x25 is '%'): `UInt8(ascii:)` is a real call in
/// debug builds, and this loop runs for every step.
struct LuaPattern {
    /// Why a match stopped without an answer.
    enum Stop: Error {
        /// A malformed pattern: Lua's message.
        case malformed(String)
        /// `onSteps` said the budget is spent.
        case budget
    }

    /// A capture: its start and length, `Capture.position` for `()`, or
    /// `Capture.open` while unclosed.
    struct Capture {
        static let open = -1
        static let position = -2
        var start: Int
        var length: Int
    }

    static let maxCaptures = 32
    /// Nesting of the recursive matcher (Lua's own limit is 200 C levels).
    static let maxDepth = 200
    /// Steps between two budget checks.
    static let checkEvery = 1024
    /// Stands in for the address of an empty buffer.
    nonisolated(unsafe) private static let empty: UnsafePointer<UInt8> = {
        let byte = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
        byte.initialize(to: 0)
        return UnsafePointer(byte)
    }()

    // Plain pointers, not buffers: their subscript is inlined even in debug
    // builds, which makes the matcher several times faster there.
    private let s: UnsafePointer<UInt8>
    private let sn: Int
    private let p: UnsafePointer<UInt8>
    private let pn: Int
    /// Called every `checkEvery` steps with the steps since the last call;
    /// returns false when the budget is spent.
    private let onSteps: (Int) -> Bool
    private var steps = 0
    private var depth = 0
    private(set) var captures: [Capture] = []

    init(subject: UnsafeBufferPointer<UInt8>, pattern: UnsafeBufferPointer<UInt8>, onSteps: @escaping (Int) -> Bool) {
        self.s = subject.baseAddress ?? LuaPattern.empty
        self.sn = subject.count
        self.p = pattern.baseAddress ?? LuaPattern.empty
        self.pn = pattern.count
        self.onSteps = onSteps
    }

    /// Steps not yet reported through `onSteps`.
    var pendingSteps: Int { steps }

    /// The first match starting at or after `start` (only at `start` if
    /// `anchored`) whose end is not `lastEnd`: its start and end.
    mutating func search(from start: Int, patternStart: Int, anchored: Bool, lastEnd: Int) throws(Stop) -> (start: Int, end: Int)? {
        var position = start
        while position <= sn {
            captures.removeAll(keepingCapacity: true)
            try tick()
            if let end = try match(position, patternStart), end != lastEnd { return (position, end) }
            if anchored { return nil }
            position += 1
        }
        return nil
    }

    private mutating func tick() throws(Stop) {
        steps += 1
        if steps >= Self.checkEvery {
            let spent = steps
            steps = 0
            if !onSteps(spent) { throw .budget }
        }
    }

    // MARK: The matcher

    /// Matches pattern from `pi` at subject position `si`; the end of the match or nil.
    private mutating func match(_ si: Int, _ pi: Int) throws(Stop) -> Int? {
        depth += 1
        defer { depth -= 1 }
        if depth > Self.maxDepth { throw .malformed("pattern too complex") }
        var si = si, pi = pi
        while true {
            try tick()
            guard pi < pn else { return si }
            let c = p[pi]
            if c == 0x28 {  // (
                if pi + 1 < pn && p[pi + 1] == 0x29 {  // )
                    return try capture(si, pi + 2, length: Capture.position)
                }
                return try capture(si, pi + 1, length: Capture.open)
            }
            if c == 0x29 { return try closeCapture(si, pi + 1) }  // )
            if c == 0x24 && pi + 1 == pn { return si == sn ? si : nil }  // $
            if c == 0x25 && pi + 1 < pn {  // %
                let next = p[pi + 1]
                if next == 0x62 {  // b
                    guard let end = try balance(si, pi + 2) else { return nil }
                    si = end
                    pi += 4
                    continue
                }
                if next == 0x66 {  // f
                    pi += 2
                    guard pi < pn, p[pi] == 0x5B else { throw .malformed("missing '[' after '%f' in pattern") }  // [
                    let end = try classEnd(pi)
                    let previous: UInt8 = si == 0 ? 0 : s[si - 1]
                    let current: UInt8 = si < sn ? s[si] : 0
                    guard !inSet(previous, pi, end - 1) && inSet(current, pi, end - 1) else { return nil }
                    pi = end
                    continue
                }
                if next >= 0x30 && next <= 0x39 {  // 0 9
                    guard let end = try backReference(si, Int(next) - Int(0x31)) else { return nil }  // 1
                    si = end
                    pi += 2
                    continue
                }
            }
            let end = try classEnd(pi)
            let matches = si < sn && single(s[si], pi, end)
            let suffix: UInt8 = end < pn ? p[end] : 0
            switch suffix {
            case 0x3F:  // ?
                if matches, let found = try match(si + 1, end + 1) { return found }
                pi = end + 1
            case 0x2B:  // +
                return matches ? try longest(si + 1, pi, end) : nil
            case 0x2A:  // *
                return try longest(si, pi, end)
            case 0x2D:  // -
                return try shortest(si, pi, end)
            default:
                guard matches else { return nil }
                si += 1
                pi = end
            }
        }
    }

    /// `x*` (and the rest of `x+`): as many as possible, then backtrack.
    private mutating func longest(_ si: Int, _ pi: Int, _ end: Int) throws(Stop) -> Int? {
        var count = 0
        while si + count < sn && single(s[si + count], pi, end) {
            try tick()
            count += 1
        }
        while count >= 0 {
            if let found = try match(si + count, end + 1) { return found }
            count -= 1
        }
        return nil
    }

    /// `x-`: as few as possible.
    private mutating func shortest(_ si: Int, _ pi: Int, _ end: Int) throws(Stop) -> Int? {
        var si = si
        while true {
            if let found = try match(si, end + 1) { return found }
            guard si < sn && single(s[si], pi, end) else { return nil }
            si += 1
        }
    }

    private mutating func capture(_ si: Int, _ pi: Int, length: Int) throws(Stop) -> Int? {
        guard captures.count < Self.maxCaptures else { throw .malformed("too many captures") }
        captures.append(Capture(start: si, length: length))
        if let found = try match(si, pi) { return found }
        captures.removeLast()
        return nil
    }

    private mutating func closeCapture(_ si: Int, _ pi: Int) throws(Stop) -> Int? {
        guard let index = captures.lastIndex(where: { $0.length == Capture.open }) else {
            throw .malformed("invalid pattern capture")
        }
        captures[index].length = si - captures[index].start
        if let found = try match(si, pi) { return found }
        captures[index].length = Capture.open
        return nil
    }

    /// `%bxy` at `pi` (pointing at x).
    private mutating func balance(_ si: Int, _ pi: Int) throws(Stop) -> Int? {
        guard pi + 1 < pn else { throw .malformed("malformed pattern (missing arguments to '%b')") }
        guard si < sn, s[si] == p[pi] else { return nil }
        let open = p[pi], close = p[pi + 1]
        var level = 1
        var i = si + 1
        while i < sn {
            try tick()
            if s[i] == close {
                level -= 1
                if level == 0 { return i + 1 }
            } else if s[i] == open {
                level += 1
            }
            i += 1
        }
        return nil
    }

    /// `%1`..`%9`: the text of an earlier, closed capture again.
    private mutating func backReference(_ si: Int, _ index: Int) throws(Stop) -> Int? {
        guard index >= 0, index < captures.count, captures[index].length != Capture.open else {
            throw .malformed("invalid capture index %\(index + 1)")
        }
        let capture = captures[index]
        guard capture.length >= 0, sn - si >= capture.length else { return nil }
        for offset in 0..<capture.length {
            try tick()
            if s[si + offset] != s[capture.start + offset] { return nil }
        }
        return si + capture.length
    }

    /// The end of the single-character class starting at `pi`.
    private func classEnd(_ pi: Int) throws(Stop) -> Int {
        var i = pi + 1
        if p[pi] == 0x25 {  // %
            guard i < pn else { throw .malformed("malformed pattern (ends with '%')") }
            return i + 1
        }
        guard p[pi] == 0x5B else { return i }  // [
        if i < pn && p[i] == 0x5E { i += 1 }  // ^
        // The first character of a set is never its end, so "[]]" is a set of "]".
        repeat {
            guard i < pn else { throw .malformed("malformed pattern (missing ']')") }
            let c = p[i]
            i += 1
            if c == 0x25 && i < pn { i += 1 }  // %
        } while i >= pn || p[i] != 0x5D  // ]
        return i + 1
    }

    /// Does `c` match the class from `pi` to `end`?
    private func single(_ c: UInt8, _ pi: Int, _ end: Int) -> Bool {
        switch p[pi] {
        case 0x2E: return true  // .
        case 0x25: return Self.inClass(c, p[pi + 1])  // %
        case 0x5B: return inSet(c, pi, end - 1)  // [
        default: return p[pi] == c
        }
    }

    /// `[set]` from `pi` (at '[') to `close` (at ']').
    private func inSet(_ c: UInt8, _ pi: Int, _ close: Int) -> Bool {
        var i = pi + 1
        var positive = true
        if p[i] == 0x5E {  // ^
            positive = false
            i += 1
        }
        while i < close {
            if p[i] == 0x25 && i + 1 < close {  // %
                if Self.inClass(c, p[i + 1]) { return positive }
                i += 2
            } else if i + 2 < close && p[i + 1] == 0x2D {  // -
                if p[i] <= c && c <= p[i + 2] { return positive }
                i += 3
            } else {
                if p[i] == c { return positive }
                i += 1
            }
        }
        return !positive
    }

    /// `%a`, `%d`, ... in the C locale; an upper-case letter is the complement;
    /// any other character stands for itself.
    static func inClass(_ c: UInt8, _ cl: UInt8) -> Bool {
        let lower = cl | 0x20
        let result: Bool
        let isLower = c >= 0x61 && c <= 0x7a, isUpper = c >= 0x41 && c <= 0x5a  // a A
        let isDigit = c >= 0x30 && c <= 0x39  // 0 9
        let isGraph = c >= 0x21 && c <= 0x7e
        switch lower {
        case 0x61: result = isLower || isUpper  // a
        case 0x63: result = c < 0x20 || c == 0x7f  // c
        case 0x64: result = isDigit  // d
        case 0x67: result = isGraph  // g
        case 0x6C: result = isLower  // l
        case 0x70: result = isGraph && !(isLower || isUpper || isDigit)  // p
        case 0x73: result = c == 0x20 || (c >= 0x09 && c <= 0x0d)  // s
        case 0x75: result = isUpper  // u
        case 0x77: result = isLower || isUpper || isDigit  // w
        case 0x78: result = isDigit || (c | 0x20 >= 0x61 && c | 0x20 <= 0x66)  // x a f
        default: return cl == c
        }
        return cl >= 0x41 && cl <= 0x5a ? !result : result  // A
    }
}
