--[[
  Job.change_delay: a delayed job is due at now + delay instead (BullMQ's
  changeDelay). Only a job in "delayed" can change its delay.

  KEYS[1] delayed   KEYS[2] meta   KEYS[3] marker   KEYS[4] events
  ARGV[1] job key prefix
  ARGV[2] job id
  ARGV[3] the new delay (ms), counted from now
  ARGV[4] now (epoch ms)
  Output: 0, or -1 no such job, -3 the job is not delayed (nothing changes).
  Events: delayed (with the new due time in ms).
]]
local rcall = redis.call
-- @include "getDelayedScore"
-- @include "addDelayMarker"
-- @include "emitEvent"

local delayedKey, metaKey, markerKey, eventsKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local jobId, delay = ARGV[2], tonumber(ARGV[3])
local jobKey = ARGV[1] .. jobId

if rcall("EXISTS", jobKey) == 0 then
  return -1
end
if rcall("ZSCORE", delayedKey, jobId) == false then
  return -3
end
-- ZADD moves the job to its new score; the sequence keeps jobs due in the same ms in order.
local score, due = getDelayedScore(delayedKey, ARGV[4], delay)
rcall("ZADD", delayedKey, score, jobId)
rcall("HSET", jobKey, "delay", delay)
emitEvent(eventsKey, metaKey, "delayed", "jobId", jobId, "delay", due)
-- The marker tells idle workers when the soonest job is due: it may be this one now.
addDelayMarker(markerKey, delayedKey)
return 0
