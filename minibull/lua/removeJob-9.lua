--[[
  Removes a job from whatever state it is in, with its hash and logs.
  A job a worker is running (locked) is not removed.

  KEYS[1] wait        KEYS[2] active   KEYS[3] prioritized   KEYS[4] delayed
  KEYS[5] completed   KEYS[6] failed   KEYS[7] stalled       KEYS[8] meta
  KEYS[9] events
  ARGV[1] job key prefix
  ARGV[2] job id
  ARGV[3] deduplication key prefix ("bull:<queue>:de:")
  Output: 1 removed, 0 locked by a worker, -1 no such job.  Events: removed.
]]
local rcall = redis.call
-- @include "removeJobKeys"
-- @include "emitEvent"
-- @include "removeDeduplicationKey"

local jobId = ARGV[2]
local jobKey = ARGV[1] .. jobId
if rcall("EXISTS", jobKey) == 0 then
  return -1
end
if rcall("EXISTS", jobKey .. ":lock") == 1 then
  return 0
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
rcall("SREM", KEYS[7], jobId)
removeDeduplicationKey(ARGV[3], jobKey, jobId)
removeJobKeys(jobKey)
emitEvent(KEYS[9], KEYS[8], "removed", "jobId", jobId, "prev", prev)
return 1
