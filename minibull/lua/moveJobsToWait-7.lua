--[[
  Queue.retry_jobs: moves up to ARGV[3] jobs, oldest first, from "failed" (or
  "completed") back to "wait". The client calls it until it returns 0.

  KEYS[1] completed or failed   KEYS[2] wait   KEYS[3] prioritized   KEYS[4] pc
  KEYS[5] marker   KEYS[6] meta   KEYS[7] events
  ARGV[1] job key prefix
  ARGV[2] the state: "completed" or "failed"
  ARGV[3] how many to move in this call
  ARGV[4] "1" to reset attempts made to 0
  Output: how many jobs were moved.  Events: waiting.
]]
local rcall = redis.call
-- @include "isQueuePaused"
-- @include "addBaseMarker"
-- @include "requeueFinishedJob"

local jobIds = rcall("ZRANGE", KEYS[1], 0, tonumber(ARGV[3]) - 1)
for _, jobId in ipairs(jobIds) do
  requeueFinishedJob(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6], KEYS[7], ARGV[1], jobId,
                     ARGV[2], ARGV[4] == "1")
end
if #jobIds > 0 then
  addBaseMarker(KEYS[5], isQueuePaused(KEYS[6]))
end
return #jobIds
