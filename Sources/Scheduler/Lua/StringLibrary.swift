import CLua

/// `string.find`, `match`, `gmatch` and `gsub` rebuilt on `LuaPattern`, whose
/// steps draw from the call's instruction budget and check its deadline: the
/// standard library's matcher runs in C without any hook, so one bad pattern
/// could backtrack for hours. Also wraps the two table functions whose C work
/// is not bounded by memory (`table.sort`, `table.move`) to charge it first.
enum StringLibrary {
    /// Lua run after `ScriptBindings.prelude`. It only calls `_match` directly
    /// from the functions scripts call, so errors name the script's line
    /// (stack level 2 from the binding).
    static let prelude = """
        local raw_match, charge, shield = scheduler._match, scheduler._charge, scheduler._shield
        scheduler._match, scheduler._charge, scheduler._shield = nil, nil, nil
        local type, tostring, tonumber, error, select = type, tostring, tonumber, error, select
        local sub, byte, concat, unpack, pack = string.sub, string.byte, table.concat, table.unpack, table.pack
        local tointeger, log, floor = math.tointeger, math.log, math.floor
        local sort, move = table.sort, table.move

        local function str(v, n, name)
          local t = type(v)
          if t == "string" then return v end
          if t == "number" then return tostring(v) end
          error("bad argument #" .. n .. " to '" .. name .. "' (string expected, got " .. t .. ")", 4)
        end
        local function int(v, n, name, default)
          if v == nil then return default end
          local i = tointeger(v) or (type(v) == "string" and tointeger(tonumber(v)))
          if not i then
            error("bad argument #" .. n .. " to '" .. name .. "' (number expected, got " .. type(v) .. ")", 4)
          end
          return i
        end
        -- _match answers start, end, then (start, length) per capture; length -2: a position capture.
        local function captures(s, whole, st, en, ...)
          local n = select("#", ...)
          if n == 0 then
            if whole then return sub(s, st, en) end
            return
          end
          local out = {}
          for i = 1, n, 2 do
            local cs, cl = select(i, ...)
            out[(i + 1) // 2] = cl == -2 and cs or sub(s, cs, cs + cl - 1)
          end
          return unpack(out, 1, n // 2)
        end
        local function find_result(s, st, en, ...)
          if st == nil then return nil end
          return st, en, captures(s, false, st, en, ...)
        end
        local function match_result(s, st, en, ...)
          if st == nil then return nil end
          return captures(s, true, st, en, ...)
        end

        -- Each function scripts call directly is wrapped in a C frame (shield),
        -- so its errors are raised at level 3: Lua function, shield, caller.
        string.find = shield(function(s, p, init, plain)
          s, p, init = str(s, 1, "find"), str(p, 2, "find"), int(init, 3, "find", 1)
          return find_result(s, raw_match(s, p, init, plain and 2 or 5, -1, 3))
        end)
        string.match = shield(function(s, p, init)
          s, p, init = str(s, 1, "match"), str(p, 2, "match"), int(init, 3, "match", 1)
          return match_result(s, raw_match(s, p, init, 5, -1, 3))
        end)
        string.gmatch = shield(function(s, p, init)
          s, p, init = str(s, 1, "gmatch"), str(p, 2, "gmatch"), int(init, 3, "gmatch", 1)
          local len = #s
          if init < 0 then init = -init > len and 1 or len + init + 1 elseif init == 0 then init = 1 end
          if init > len + 1 then init = len + 1 end
          local src, last = init, -1
          local function step(st, en, ...)
            if st == nil then src = len + 2 return nil end
            src, last = en + 1, en
            return captures(s, true, st, en, ...)
          end
          -- Called by the generic for: level 2 is the script.
          return function()
            if src > len + 1 then return nil end
            return step(raw_match(s, p, src, 0, last, 2))
          end
        end)

        -- A replacement string compiled to pieces: text, or a capture number.
        local function compile(repl)
          local pieces, text, i, n = {}, {}, 1, #repl
          while i <= n do
            local c = byte(repl, i)
            if c == 37 then -- %
              i = i + 1
              local d = byte(repl, i)
              if d == 37 then text[#text + 1] = "%"
              elseif d and d >= 48 and d <= 57 then
                if #text > 0 then pieces[#pieces + 1] = concat(text) text = {} end
                pieces[#pieces + 1] = d - 48
              else
                return nil, "invalid use of '%' in replacement string"
              end
            else
              text[#text + 1] = sub(repl, i, i)
            end
            i = i + 1
          end
          if #text > 0 then pieces[#pieces + 1] = concat(text) end
          return pieces
        end
        local function capture(s, st, en, r, i)
          local ncap = (r.n - 2) // 2
          if i == 0 or (i == 1 and ncap == 0) then return sub(s, st, en) end
          if i > ncap then error("invalid capture index %" .. i .. " in replacement string", 5) end
          local cs, cl = r[1 + 2 * i], r[2 + 2 * i]
          if cl == -2 then return cs end
          return sub(s, cs, cs + cl - 1)
        end
        local function replacement(s, st, en, r, repl, pieces)
          local value
          if pieces then
            local out = {}
            for k = 1, #pieces do
              local piece = pieces[k]
              if type(piece) == "number" then out[k] = tostring(capture(s, st, en, r, piece)) else out[k] = piece end
            end
            return concat(out)
          elseif type(repl) == "table" then
            value = repl[capture(s, st, en, r, 1)]
          else
            value = repl(captures(s, true, st, en, unpack(r, 3, r.n)))
          end
          if not value then return sub(s, st, en) end
          local tv = type(value)
          if tv == "number" then return tostring(value) end
          if tv ~= "string" then error("invalid replacement value (a " .. tv .. ")", 4) end
          return value
        end
        string.gsub = shield(function(s, p, repl, max)
          s, p = str(s, 1, "gsub"), str(p, 2, "gsub")
          local tr = type(repl)
          if tr == "number" then repl, tr = tostring(repl), "string" end
          if tr ~= "string" and tr ~= "table" and tr ~= "function" then
            error("bad argument #3 to 'gsub' (string/function/table expected, got " .. tr .. ")", 3)
          end
          max = int(max, 4, "gsub", #s + 1)
          local pieces
          local anchored = byte(p, 1) == 94 -- ^
          local parts, np, count, src, last = {}, 0, 0, 1, -1
          while count < max do
            local r = pack(raw_match(s, p, src, 1, last, 3))
            local st, en = r[1], r[2]
            if st == nil then break end
            if tr == "string" and not pieces then
              local problem
              pieces, problem = compile(repl)
              if not pieces then error(problem, 3) end
            end
            count = count + 1
            parts[np + 1], parts[np + 2] = sub(s, src, st - 1), replacement(s, st, en, r, repl, pieces)
            np = np + 2
            src, last = en + 1, en
            if anchored then break end
          end
          parts[np + 1] = sub(s, src)
          return concat(parts), count
        end)

        -- C loops with no Lua inside them: charge their length first.
        table.sort = shield(function(t, comp)
          local n = type(t) == "table" and #t or 0
          if n > 1 then charge(n * (floor(log(n, 2)) + 1), 3) end
          sort(t, comp)
        end)
        table.move = shield(function(a1, f, e, t, a2)
          local from, to = tointeger(f), tointeger(e)
          if from and to and to >= from then charge(to - from + 1, 3) end
          local result = move(a1, f, e, t, a2)
          return result
        end)
        """
}

private func stringBytes(_ L: OpaquePointer, _ index: Int32) -> UnsafeBufferPointer<UInt8>? {
    guard lua_type(L, index) == LUA_TSTRING else { return nil }
    var length = 0
    guard let pointer = lua_tolstring(L, index, &length) else { return nil }
    return UnsafeBufferPointer(start: UnsafeRawPointer(pointer).assumingMemoryBound(to: UInt8.self), count: length)
}

/// Characters that make a pattern more than plain text.
private let specials = Set("^$*+?.([%-".utf8)

/// `_match(s, p, init, flags, lastEnd, level)`: flags 1 = `^` anchors, 2 = plain
/// text, 4 = plain text if the pattern has no special characters. Answers
/// nothing, or start and end (1-based, inclusive) and two numbers per capture.
func stringMatch(_ L: OpaquePointer?, _ context: UnsafeMutableRawPointer?, _ reply: UnsafeMutablePointer<clua_reply>?) {
    guard let L, let reply, let control = clua_control_of(L) else { return }
    // Errors are reported at the line that called the string function
    // (argument 6: its stack level seen from here).
    reply.pointee.level = Int32(clamping: max(1, clua_tointeger(L, 6)))
    guard let subject = stringBytes(L, 1), let pattern = stringBytes(L, 2) else {
        return reply.fail("string matching: subject and pattern must be strings", level: reply.pointee.level)
    }
    let flags = Int(clua_tointeger(L, 4))
    let lastEnd = Int(clua_tointeger(L, 5))
    var start = Int(clua_tointeger(L, 3))
    if start == 0 || start < -subject.count { start = 1 } else if start < 0 { start = subject.count + start + 1 }
    start -= 1
    guard start <= subject.count else { return }
    func answer(_ values: [Int]) {
        for (index, value) in values.prefix(Int(CLUA_REPLY_VALUES)).enumerated() {
            withUnsafeMutableBytes(of: &reply.pointee.values) { $0.storeBytes(of: lua_Integer(value), toByteOffset: index * 8, as: lua_Integer.self) }
        }
        reply.pointee.count = Int32(min(values.count, Int(CLUA_REPLY_VALUES)))
    }
    func broke() {
        reply.pointee.status = Int32(CLUA_REPLY_BUDGET)
        reply.pointee.budget = clua_charge(control, 0)
    }
    if flags & 2 != 0 || (flags & 4 != 0 && !pattern.contains(where: specials.contains)) {
        // glibc's memmem is linear; charge what it scans.
        let remaining = subject.count - start
        let offset = subject.baseAddress.map { base in
            pattern.baseAddress.map { needle in
                clua_memfind(UnsafeRawPointer(base + start).assumingMemoryBound(to: CChar.self), remaining,
                             UnsafeRawPointer(needle).assumingMemoryBound(to: CChar.self), pattern.count)
            } ?? 0
        } ?? (pattern.isEmpty ? 0 : -1)
        let found: Int? = offset >= 0 ? start + Int(offset) : nil
        if clua_charge(control, Int64(((found ?? subject.count) - start) / 16 + 1)) != CLUA_WITHIN { return broke() }
        if let found { answer([found + 1, found + pattern.count]) }
        return
    }
    var anchored = false
    var patternStart = 0
    if flags & 1 != 0, pattern.first == UInt8(ascii: "^") {
        anchored = true
        patternStart = 1
    }
    var matcher = LuaPattern(subject: subject, pattern: pattern) { steps in clua_charge(control, Int64(steps)) == CLUA_WITHIN }
    do {
        let found = try matcher.search(from: start, patternStart: patternStart, anchored: anchored, lastEnd: lastEnd)
        if clua_charge(control, Int64(matcher.pendingSteps)) != CLUA_WITHIN { return broke() }
        guard let found else { return }
        if matcher.captures.contains(where: { $0.length == LuaPattern.Capture.open }) {
            return reply.fail("unfinished capture", level: reply.pointee.level)
        }
        var values = [found.start + 1, found.end]
        for capture in matcher.captures {
            values.append(capture.start + 1)
            values.append(capture.length)
        }
        answer(values)
    } catch {
        switch error {
        case .budget: broke()
        case .malformed(let message): reply.fail(message, level: reply.pointee.level)
        }
    }
}

/// `_charge(steps, level)`: draws `steps` from the call's instruction budget.
func chargeSteps(_ L: OpaquePointer?, _ context: UnsafeMutableRawPointer?, _ reply: UnsafeMutablePointer<clua_reply>?) {
    guard let L, let reply, let control = clua_control_of(L) else { return }
    reply.pointee.level = Int32(clamping: max(1, clua_tointeger(L, 2)))
    if clua_charge(control, max(0, clua_tointeger(L, 1))) != CLUA_WITHIN {
        reply.pointee.status = Int32(CLUA_REPLY_BUDGET)
        reply.pointee.budget = clua_charge(control, 0)
    }
}
