--[[
  Queue.retry_jobs: moves up to ARGV[3] jobs, oldest first, from "failed" (or
  "completed") back to "wait". The client calls it until it returns 0.
  Only jobs that finished at or before ARGV[5], the time the client's first call
  started, are moved (BullMQ's moveJobsToWait: ZRANGEBYSCORE 0 timestamp LIMIT):
  a job that live workers run and finish again meanwhile is not moved again.

  KEYS[1] finished (completed or failed)   KEYS[2] wait   KEYS[3] prioritized   KEYS[4] pc
  KEYS[5] marker   KEYS[6] meta   KEYS[7] events
  ARGV[1] job key prefix
  ARGV[2] the state: "completed" or "failed"
  ARGV[3] how many to move in this call
  ARGV[4] "1" to reset attempts made to 0
  ARGV[5] the cut-off (epoch ms): move only jobs finished at or before it
  Output: how many jobs were moved.  Events: waiting.
]]
local rcall = redis.call
-- @include "isQueuePaused"
-- @include "addBaseMarker"
-- @include "requeueFinishedJob"

local jobIds = rcall("ZRANGEBYSCORE", KEYS[1], 0, ARGV[5], "LIMIT", 0, tonumber(ARGV[3]))
for _, jobId in ipairs(jobIds) do
  requeueFinishedJob(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6], KEYS[7], ARGV[1], jobId,
                     ARGV[2], ARGV[4] == "1")
end
if #jobIds > 0 then
  addBaseMarker(KEYS[5], isQueuePaused(KEYS[6]))
end
return #jobIds
