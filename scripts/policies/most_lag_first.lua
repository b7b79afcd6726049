-- most_lag_first.lua: the partition with the most lag goes first, to the
-- worker that has been busy the least. Topics are not taken in turn: any
-- topic of the group may be chosen.
--
-- Use it by copying it over scripts/rotate.lua (or pointing --scripts at a
-- directory that has it as rotate.lua).

function rotate(ctx)
  local best_partition
  for _, p in ipairs(ctx.partitions) do
    if p.holder == nil and p.lag > 0 and (best_partition == nil or p.lag > best_partition.lag) then
      best_partition = p
    end
  end
  if best_partition == nil then return nil end

  local best_worker
  for _, w in ipairs(ctx.workers) do
    if w.state == "idle" and (best_worker == nil or w.busy_ms < best_worker.busy_ms) then
      best_worker = w
    end
  end
  if best_worker == nil then return nil end

  return { worker = best_worker.id, topic = best_partition.topic, partition = best_partition.partition }
end
