-- generate.lua: what the producer publishes.
--
-- generate(tick) is called every [producer] interval_ms (tick = 1, 2, 3, ...).
-- It returns a list of tasks to publish, or nil for none. A task is a table:
--   { topic = "A", message = "...", key = "Key 0", headers = { name = "value" } }
-- topic and message are required; key and headers are optional.
-- Tasks with the same key go to the same partition and keep their order.
--
-- This default reproduces the Rust seed's demo: each tick, one task for each
-- of the topics A, B, C and D, keyed "Key <n>" and carrying a header_key header.

local demo = {
  { topic = "A", message = "AA" },
  { topic = "B", message = "BB" },
  { topic = "C", message = "CC" },
  { topic = "D", message = "DD" },
}

function generate(tick)
  local tasks = {}
  for i, task in ipairs(demo) do
    tasks[#tasks + 1] = {
      topic = task.topic,
      message = "Message " .. task.message,
      key = "Key " .. (i - 1),
      headers = { header_key = "header_value" },
    }
  end
  return tasks
end

-- on_task(task) is called for every task posted to POST /tasks/generate.
-- Return the task (changed or not) to publish it, or nil and a reason to
-- refuse it (the client gets 400 with that reason).
--
-- Here, as the seed did: a task without a key gets the seed's first key,
-- "Key 0" (so un-keyed tasks of one topic stay in one partition, in the order
-- they came), and a task without headers gets the seed's header_key header.
function on_task(task)
  if task.key == nil then
    task.key = "Key 0"
  end
  if task.headers == nil then
    task.headers = { header_key = "header_value" }
  end
  return task
end
