--[[
  Removes a job from whatever state it is in, with its hash, lock, logs, stalled
  mark and deduplication id (includes/removeJob). A job a worker is running
  (locked) is not removed, nor the pending run of a job scheduler (BullMQ's
  removeJob returns -8 for it): remove the scheduler instead.

  KEYS[1] wait        KEYS[2] active   KEYS[3] prioritized   KEYS[4] delayed
  KEYS[5] completed   KEYS[6] failed   KEYS[7] stalled       KEYS[8] meta
  KEYS[9] events      KEYS[10] repeat
  ARGV[1] job key prefix
  ARGV[2] job id
  ARGV[3] deduplication key prefix ("bull:<queue>:de:")
  Output: 1 removed, 0 locked by a worker, -1 no such job, -8 a scheduler's pending run.
  Events: removed.
]]
local rcall = redis.call
-- @include "removeJob"
-- @include "emitEvent"

local prefix, jobId = ARGV[1], ARGV[2]
local jobKey = prefix .. jobId
if rcall("EXISTS", jobKey) == 0 then
  return -1
end
if rcall("EXISTS", jobKey .. ":lock") == 1 then
  return 0
end
if isPendingSchedulerRun(KEYS[10], prefix, jobId) then
  return -8
end
local prev = "unknown"
for i, key in ipairs({KEYS[1], KEYS[2]}) do
  if rcall("LREM", key, 0, jobId) > 0 then
    prev = ({"waiting", "active"})[i]
  end
end
for i, key in ipairs({KEYS[3], KEYS[4], KEYS[5], KEYS[6]}) do
  if rcall("ZREM", key, jobId) > 0 then
    prev = ({"prioritized", "delayed", "completed", "failed"})[i]
  end
end
removeJob(prefix, jobId, ARGV[3], KEYS[7])
emitEvent(KEYS[9], KEYS[8], "removed", "jobId", jobId, "prev", prev)
return 1
