-- process.lua: what a worker does with each message.
--
-- process(msg) is called for every message, in partition order, by the worker
-- holding the partition's lease. msg has:
--   topic, partition, offset, key (nil if none), payload, headers (table),
--   timestamp (ms since the epoch), group, worker
-- Return nothing or true: done (its offset will be committed).
-- Return false, "reason" or raise an error: failed; it is retried
-- ([[groups]] max_attempts, retry_backoff_ms) and then dead-lettered.
--
-- scheduler.emit(topic, message [, key [, headers]]) publishes a follow-up
-- task; the input's offset is committed only after the broker acknowledged
-- every task it emitted. scheduler.yield() ends this worker's slice after
-- the current message. scheduler.log(level, text) logs.
--
-- This default logs each message, then each of its headers, the way the Rust
-- seed did.

function process(msg)
  scheduler.log("info", string.format(
    "key: '%s', payload: '%s', topic: %s, partition: %d, offset: %d, timestamp: CreateTime(%d)",
    tostring(msg.key), msg.payload, msg.topic, msg.partition, msg.offset, msg.timestamp))
  -- Sorted by name, so the lines come in the same order for every message.
  local names = {}
  for name in pairs(msg.headers) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    scheduler.log("info", string.format("  Header %q: %q", name, msg.headers[name]))
  end
  return true
end
