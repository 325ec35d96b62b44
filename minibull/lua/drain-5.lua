--[[
  Removes every job waiting to run (and, if asked, every delayed job), each as
  includes/removeJob does. Running and finished jobs stay, and so do job
  schedulers' pending runs (as in BullMQ: they are what plans the next run).

  KEYS[1] wait   KEYS[2] prioritized   KEYS[3] pc   KEYS[4] delayed   KEYS[5] repeat
  ARGV[1] job key prefix
  ARGV[2] "1" to remove delayed jobs too
  ARGV[3] deduplication key prefix ("bull:<queue>:de:"): their ids are freed
  Output: the number of jobs removed.
]]
local rcall = redis.call
-- @include "removeJob"
-- @include "schedulerRunId"
-- @include "batches"

local prefix, dedupPrefix, repeatKey = ARGV[1], ARGV[3], KEYS[5]
local removed = 0

local kept = {}
for _, jobId in ipairs(rcall("LRANGE", KEYS[1], 0, -1)) do
  if isPendingSchedulerRun(repeatKey, prefix, jobId) then
    table.insert(kept, jobId)
  else
    removeJob(prefix, jobId, dedupPrefix, nil)
    removed = removed + 1
  end
end
rcall("DEL", KEYS[1])
for from, to in batches(#kept, UNPACK_BATCH) do
  rcall("RPUSH", KEYS[1], unpack(kept, from, to))
end
local zsets = {KEYS[2]}
if ARGV[2] == "1" then
  table.insert(zsets, KEYS[4])
end
for _, zset in ipairs(zsets) do
  for _, jobId in ipairs(rcall("ZRANGE", zset, 0, -1)) do
    if not isPendingSchedulerRun(repeatKey, prefix, jobId) then
      rcall("ZREM", zset, jobId)
      removeJob(prefix, jobId, dedupPrefix, nil)
      removed = removed + 1
    end
  end
end
if rcall("ZCARD", KEYS[2]) == 0 then
  rcall("DEL", KEYS[3])
end
return removed
