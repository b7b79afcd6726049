-- rotate.lua: who takes a partition next, at every slice boundary.
--
-- rotate(ctx) is called when a worker's lease on a partition ends. ctx has:
--   group, topic, partition, worker      the lease that just ended
--   reason                               "slice" or "yield" (a slice boundary: the worker
--                                        goes on until the next holder takes over) or
--                                        "drained" (the lease ended: nothing left to do)
--   slice = { messages, errors, dead_lettered, elapsed_ms, slice_ms }
--   slice_ms                             the group's configured slice
--   topics, current_topic                the group's topics and the one being worked on
--   workers = { { id, state = "idle"|"busy", messages, errors, busy_ms, slices,
--                 topic?, partition? }, ... }       (in pool order)
--   partitions = { { topic, partition, holder?, committed, next_offset, lag }, ... }
-- Return nil for the built-in default, or a table:
--   { worker = "workers-2" [, topic = "A" [, partition = 0]] [, slice_ms = 3000] }
-- Without topic/partition the partition is chosen as the default does (the
-- one that just ended if it has work, else the free one waiting longest in
-- the current topic; after a "drained" end, partitions with messages
-- already fetched come first). An invalid answer or an error is logged and the
-- default is used.
--
-- This file IS the default policy: round robin over the workers (the next
-- idle worker after the one whose slice ended), topics in turn (the group
-- moves to its next topic once every worker had a slice on the current one,
-- skipping topics with nothing to do). Other policies: scripts/policies/.

function rotate(ctx)
  local n = #ctx.workers
  local ended = 1
  for i, w in ipairs(ctx.workers) do
    if w.id == ctx.worker then ended = i end
  end
  for step = 1, n do
    local w = ctx.workers[(ended + step - 1) % n + 1]
    if w.state == "idle" then
      return { worker = w.id }
    end
  end
  return nil
end
