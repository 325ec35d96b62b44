--[[
  Job.retry: moves one finished job back to "wait" to run again.

  KEYS[1] finished (completed or failed)   KEYS[2] wait   KEYS[3] prioritized   KEYS[4] pc
  KEYS[5] marker   KEYS[6] meta   KEYS[7] events
  ARGV[1] job key prefix
  ARGV[2] job id
  ARGV[3] the state it should be in: "completed" or "failed"
  ARGV[4] "1" to reset attempts made to 0
  Output: 0, or -1 no such job, -3 the job is not in that state.
  Events: waiting.
]]
local rcall = redis.call
-- @include "isQueuePaused"
-- @include "addBaseMarker"
-- @include "requeueFinishedJob"

local jobId = ARGV[2]
if rcall("EXISTS", ARGV[1] .. jobId) == 0 then
  return -1
end
if not rcall("ZSCORE", KEYS[1], jobId) then
  return -3
end
requeueFinishedJob(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6], KEYS[7], ARGV[1], jobId,
                   ARGV[3], ARGV[4] == "1")
addBaseMarker(KEYS[5], isQueuePaused(KEYS[6]))
return 0
