import Foundation
import Testing
@testable import Scheduler

@Suite("The budgeted string library", .sharesMachine)
struct StringLibraryTests {
    /// Lua 5.4's documented answers for its pattern functions; `eq` raises
    /// on the first difference, naming the case.
    static let cases = """
        local function eq(a, b, what)
          if a ~= b then error(what .. ": got " .. tostring(a) .. ", want " .. tostring(b), 2) end
        end
        function generate()
          eq(string.find("hello world", "o w"), 5, "find")
          eq(select(2, string.find("hello world", "o w")), 7, "find end")
          eq(select(2, string.find("hello", "l+")), 4, "find l+ end")
          eq(string.find("a.b", ".", 1, true), 2, "plain find")
          eq(string.find("a.b", "%."), 2, "escaped dot")
          eq(string.find("abc", "b", -1), nil, "negative init")
          eq(string.find("abc", "c", -1), 3, "negative init hit")
          eq(string.find("abc", "", 10), nil, "init past the end")
          eq(string.find("abc", "", 4), 4, "empty match at the end")
          eq(select(3, string.find("key=value", "(%w+)=")), "key", "find captures")
          eq(string.match("key=value", "(%w+)=(%w+)"), "key", "match capture 1")
          eq(select(2, string.match("key=value", "(%w+)=(%w+)")), "value", "match capture 2")
          eq(string.match("hello", "()ll()"), 3, "position capture")
          eq(select(2, string.match("hello", "()ll()")), 5, "position capture 2")
          eq(string.match("  trim  ", "^%s*(.-)%s*$"), "trim", "trim")
          eq(string.match("THE (quick) fox", "%((%a+)%)"), "quick", "escaped parentheses")
          eq(string.match("f(a(b)c)d", "%b()"), "(a(b)c)", "balance")
          eq(string.match("THE quick", "%f[%a]%a+", 4), "quick", "frontier")
          eq(string.match("hello", "^h"), "h", "anchor")
          eq(string.match("hello", "^e"), nil, "anchor fails")
          eq(string.match("hello", "o$"), "o", "end anchor")
          eq(string.match("a$b", "%$"), "$", "escaped dollar")
          eq(string.match("x = 10", "[%d]+"), "10", "set with a class")
          eq(string.match("abc123", "[^%a]+"), "123", "complement")
          eq(string.match("a-z", "[a%-z]+"), "a-z", "escaped dash")
          eq(string.match("m", "[a-z]"), "m", "range")
          eq(string.match("]]x", "[]]+"), "]]", "bracket first in a set")
          eq(string.match("abcabc", "(abc)%1"), "abc", "back reference")
          eq(string.match("aaa", "a-b"), nil, "lazy, no match")
          eq(string.match("aaab", "a-b"), "aaab", "lazy")
          eq(string.match("ab", "a?b"), "ab", "optional")
          eq(string.match("b", "a?b"), "b", "optional absent")
          eq(string.match("Hello World", "%u%l+", 2), "World", "classes and init")
          eq(string.match("a1_ b", "[%w_]+"), "a1_", "word set")
          eq(string.match("\\tx", "%c"), "\\t", "control")
          eq(string.match("x,y", "%p"), ",", "punctuation")
          eq(string.match("ff0A", "%x+"), "ff0A", "hex digits")
          eq(("hello"):find("l"), 3, "method call")
          eq(string.find(12345, 34), 3, "numbers as strings")
          eq(string.gsub("hello world", "o", "0"), "hell0 w0rld", "gsub")
          eq(select(2, string.gsub("hello world", "o", "0")), 2, "gsub count")
          eq(string.gsub("hello", "", "-"), "-h-e-l-l-o-", "gsub empty pattern")
          eq(string.gsub("abc", "%w", "%0%0"), "aabbcc", "gsub %0")
          eq(string.gsub("abc", "%w", "%1."), "a.b.c.", "gsub %1 without captures")
          eq(string.gsub("hello world", "(%w+) (%w+)", "%2 %1"), "world hello", "gsub swap")
          eq(string.gsub("abc", "b", "%%"), "a%c", "gsub %%")
          eq(string.gsub("$name is $age", "%$(%w+)", {name = "Ann", age = 7}), "Ann is 7", "gsub table")
          eq(string.gsub("abc", "%w", function(c) if c == "b" then return false end return c:upper() end), "AbC", "gsub function")
          eq(string.gsub("aaa", "a", "b", 2), "bba", "gsub max")
          eq(string.gsub("hello", "^h", "H"), "Hello", "gsub anchored")
          eq(string.gsub("hello", "^x", "H"), "hello", "gsub anchored, no match")
          eq(string.gsub("abc", "x*", "-"), "-a-b-c-", "gsub empty matches")
          local words = {}
          for w in string.gmatch("one two  three", "%a+") do words[#words + 1] = w end
          eq(table.concat(words, ","), "one,two,three", "gmatch")
          local found = {}
          for k, v in string.gmatch("a=1, b=2", "(%w+)=(%w+)") do found[#found + 1] = k .. v end
          eq(table.concat(found, ","), "a1,b2", "gmatch captures")
          local n = 0
          for _ in string.gmatch("abc", "") do n = n + 1 end
          eq(n, 4, "gmatch empty pattern")
          eq(pcall(string.find, "a", "%"), false, "malformed: ends with %")
          local ok, err = pcall(string.find, "a", "[a")
          eq(ok == false and err:find("missing ']'", 1, true) ~= nil, true, "malformed: missing ]")
          ok, err = pcall(string.gsub, "a", "a", "%2")
          eq(ok == false and err:find("invalid capture index", 1, true) ~= nil, true, "bad capture in a replacement")
          ok, err = pcall(string.match, "a", "(a")
          eq(ok == false and err:find("unfinished capture", 1, true) ~= nil, true, "unfinished capture")
          eq(string.rep("ab", 3, ","), "ab,ab,ab", "rep")
          local t = {3, 1, 2}
          table.sort(t)
          eq(table.concat(t), "123", "sort")
          table.sort(t, function(a, b) return a > b end)
          eq(table.concat(t), "321", "sort with a comparator")
          eq(table.concat(table.move({1, 2, 3}, 1, 3, 2), ","), "1,1,2,3", "move")
          return nil
        end
        """

    @Test("find, match, gmatch and gsub answer as Lua 5.4's do")
    func luaSemantics() async throws {
        let scripts = try makeScripts(["generate.lua": Self.cases])
        let script = try await GenerateScript.load(scriptsDirectory: scripts, logger: quietLogger)
        defer { Task { await script.close() } }
        await #expect(throws: Never.self) { _ = try await script.generate(tick: 1) }
    }

    @Test("a malformed pattern is an error at the script's line")
    func malformedPatternLine() async throws {
        let scripts = try makeScripts(["generate.lua": "function generate()\n  return string.find('a', '%')\nend\n"])
        let script = try await GenerateScript.load(scriptsDirectory: scripts, logger: quietLogger)
        defer { Task { await script.close() } }
        await #expect {
            _ = try await script.generate(tick: 1)
        } throws: { error in
            (error as? LuaError)?.line == 2 && (error as? LuaError)?.message.contains("malformed pattern") == true
        }
    }

    @Test("the catastrophic pattern is stopped by the default budgets")
    func catastrophicPatternDefaults() async throws {
        let scripts = try makeScripts(["generate.lua": "function generate()\n  return string.find(string.rep('a', 40), string.rep('a*', 12) .. 'b')\nend\n"])
        let script = try await GenerateScript.load(scriptsDirectory: scripts, logger: quietLogger)
        defer { Task { await script.close() } }
        let started = ContinuousClock.now
        await #expect {
            _ = try await script.generate(tick: 1)
        } throws: { error in
            (error as? LuaError)?.budget != nil && (error as? LuaError)?.line == 2
        }
        print("catastrophic pattern with the default limits stopped after \(ContinuousClock.now - started)")
    }
}
