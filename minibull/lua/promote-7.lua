--[[
  Job.promote: runs a delayed job now. Moves it from "delayed" to "wait" (or
  "prioritized", by its priority) and wakes a worker, as BullMQ's promote.

  KEYS[1] delayed   KEYS[2] wait   KEYS[3] prioritized   KEYS[4] pc
  KEYS[5] marker    KEYS[6] meta   KEYS[7] events
  ARGV[1] job key prefix
  ARGV[2] job id
  Output: 0, or -1 no such job, -3 the job is not delayed (nothing changes).
  Events: waiting (prev: delayed).
]]
local rcall = redis.call
-- @include "isQueuePaused"
-- @include "addJobToWait"
-- @include "addBaseMarker"
-- @include "emitEvent"

local delayedKey, waitKey, prioritizedKey, pcKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local markerKey, metaKey, eventsKey = KEYS[5], KEYS[6], KEYS[7]
local jobId = ARGV[2]
local jobKey = ARGV[1] .. jobId

if rcall("EXISTS", jobKey) == 0 then
  return -1
end
if rcall("ZREM", delayedKey, jobId) == 0 then
  return -3
end
local priority = tonumber(rcall("HGET", jobKey, "priority")) or 0
-- As BullMQ: LPUSH, whatever lifo says (the job was due later, so it goes last in line).
addJobToWait(waitKey, prioritizedKey, pcKey, jobId, priority, "LPUSH")
addBaseMarker(markerKey, isQueuePaused(metaKey))
rcall("HSET", jobKey, "delay", 0)
emitEvent(eventsKey, metaKey, "waiting", "jobId", jobId, "prev", "delayed")
return 0
