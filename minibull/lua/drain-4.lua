--[[
  Removes every job waiting to run (and, if asked, every delayed job).
  Running and finished jobs stay, and so do job schedulers' pending runs.

  KEYS[1] wait   KEYS[2] prioritized   KEYS[3] pc   KEYS[4] delayed
  ARGV[1] job key prefix
  ARGV[2] "1" to remove delayed jobs too
  ARGV[3] deduplication key prefix ("bull:<queue>:de:"): their ids are freed
  Output: the number of jobs removed.
]]
local rcall = redis.call
-- @include "removeJobKeys"
-- @include "removeDeduplicationKey"
-- @include "batches"

local removed = 0
-- The pending run of a job scheduler stays (as in BullMQ): it is what plans the next run.
local function isSchedulerRun(jobId)
  return string.sub(jobId, 1, 7) == "repeat:"
end
local function removeJob(jobId)
  removeDeduplicationKey(ARGV[3], ARGV[1] .. jobId, jobId)
  removeJobKeys(ARGV[1] .. jobId)
  removed = removed + 1
end

local kept = {}
for _, jobId in ipairs(rcall("LRANGE", KEYS[1], 0, -1)) do
  if isSchedulerRun(jobId) then
    table.insert(kept, jobId)
  else
    removeJob(jobId)
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
    if not isSchedulerRun(jobId) then
      rcall("ZREM", zset, jobId)
      removeJob(jobId)
    end
  end
end
if rcall("ZCARD", KEYS[2]) == 0 then
  rcall("DEL", KEYS[3])
end
return removed
