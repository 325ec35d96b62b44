--[[
  Stores a job's progress (any JSON value) and tells listeners.

  KEYS[1] job   KEYS[2] meta   KEYS[3] events
  ARGV[1] job id
  ARGV[2] progress as JSON text
  Output: 0, or -1 no such job.  Events: progress.
]]
local rcall = redis.call
-- @include "emitEvent"

if rcall("EXISTS", KEYS[1]) == 0 then
  return -1
end
rcall("HSET", KEYS[1], "progress", ARGV[2])
emitEvent(KEYS[3], KEYS[2], "progress", "jobId", ARGV[1], "data", ARGV[2])
return 0
