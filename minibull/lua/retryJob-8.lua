--[[
  Retries a failed attempt at once: moves the job from "active" back to "wait"
  (or "prioritized") and counts the attempt. Checks first, then writes: a
  refused call, or fields cjson cannot decode, change nothing.

  KEYS[1] wait     KEYS[2] active   KEYS[3] prioritized   KEYS[4] pc
  KEYS[5] marker   KEYS[6] meta     KEYS[7] events        KEYS[8] stalled
  ARGV[1] job key prefix
  ARGV[2] job id
  ARGV[3] lock token
  ARGV[4] push command: "LPUSH" (fifo) or "RPUSH" (lifo)
  ARGV[5] JSON object of job fields to set (failedReason, stacktrace)
  ARGV[6] now (epoch ms), for the event
  Output: 0, or -1 no such job (its id still leaves "active", see releaseActiveJob),
          -2 lock missing, -3 not active, -6 lock held by another worker. A re-run
          of a call that succeeded (its reply was lost) answers 0 again, changing nothing.
  Job fields: sets "mbf" (minibull's own) to [token], see releaseActiveJob's endedBy.
  Events: waiting (with "ts", the clock's now).
]]
local rcall = redis.call
-- @include "isQueuePaused"
-- @include "releaseActiveJob"
-- @include "jobFields"
-- @include "addJobToWait"
-- @include "addBaseMarker"
-- @include "emitEvent"

local waitKey, activeKey, prioritizedKey, pcKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local markerKey, metaKey, eventsKey, stalledKey = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local jobId, token = ARGV[2], ARGV[3]
local jobKey = ARGV[1] .. jobId
local fields = decodeJobFields(ARGV[5])

if rcall("EXISTS", jobKey) == 0 then
  dropMissingJob(activeKey, stalledKey, jobKey, jobId, token)
  return -1
end
local lockError = releaseActiveJob(activeKey, stalledKey, jobKey, jobId, token)
if lockError == -2 and endedBy(rcall("HGET", jobKey, "mbf"), token) then
  return 0  -- a re-run: this call ran already (see endedBy)
end
if lockError < 0 then
  return lockError
end
fields["mbf"] = cjson.encode({token})
setJobFields(jobKey, fields)
local priority = tonumber(rcall("HGET", jobKey, "priority")) or 0
addJobToWait(waitKey, prioritizedKey, pcKey, jobId, priority, ARGV[4])
addBaseMarker(markerKey, isQueuePaused(metaKey))
rcall("HINCRBY", jobKey, "atm", 1)
emitEvent(eventsKey, metaKey, "waiting", "jobId", jobId, "prev", "active", "ts", ARGV[6])
return 0
