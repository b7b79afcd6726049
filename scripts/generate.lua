-- generate.lua: what the producer publishes.
--
-- The producer owns a task pool (GET /tasks). Its initial content is the
-- global `tasks` below; POST /tasks/generate adds to it, DELETE /tasks/<id or
-- index> removes from it. The pool is a Kafka topic ([producer] pool_topic)
-- that every daemon follows, so `tasks` only seeds a pool that does not exist yet.
--
-- generate(tick, pool) is called every [producer] interval_ms (tick = 1, 2,
-- 3, ...) with a copy of the pool's tasks, in order, on one daemon of those
-- sharing the pool topic (the publisher). It returns a list of tasks
-- to publish, or nil for none. A task is a table:
--   { topic = "A", message = "...", key = "Key 0", headers = { name = "value" } }
-- topic and message are required; key and headers are optional.
-- Tasks with the same key go to the same partition and keep their order.
--
-- This default is the Rust seed's producer: the pool starts with the tasks
-- A, B, C and D, and each tick publishes every task of the pool with payload
-- "Message <message>", key "Key <index in the pool>" and a header_key header
-- (a task posted with its own key or headers keeps them).

tasks = {
  { topic = "A", message = "AA" },
  { topic = "B", message = "BB" },
  { topic = "C", message = "CC" },
  { topic = "D", message = "DD" },
}

function generate(tick, pool)
  local out = {}
  for i, task in ipairs(pool) do
    out[#out + 1] = {
      topic = task.topic,
      message = "Message " .. task.message,
      key = task.key or ("Key " .. (i - 1)),
      headers = task.headers or { header_key = "header_value" },
    }
  end
  return out
end

-- on_task(task) (optional, not defined here) would be called for every task
-- posted to POST /tasks/generate: return the task (changed or not) to accept
-- it, or nil and a reason to refuse it (the client gets 400 with that reason).
-- Without it every well-formed task is accepted as posted, and the API does
-- not wait for this script's thread. For example:
--
-- function on_task(task)
--   if task.topic:sub(1, 9) == "internal." then return nil, "reserved topic" end
--   return task
-- end

-- schedules (optional, not set here): recurring tasks kept in this file,
-- keyed by name (the schedule's id), each as POST /tasks/generate takes one.
-- Applied at start and at every reload: created, changed in place, or
-- removed when gone from the table (GET /schedules?source=script lists them).
-- For example:
--
-- schedules = {
--   ["nightly-report"] = { topic = "reports", message = "nightly", cron = "0 2 * * *", timezone = "Europe/Berlin" },
--   heartbeat = { topic = "health", message = "ping", every = "30s", catchup = "skip" },
-- }
