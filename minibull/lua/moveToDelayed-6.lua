--[[
  Retries a failed attempt later (backoff): moves the job from "active" to
  "delayed", due at now + delay, and counts the attempt. Checks first, then
  writes: a refused call, or fields cjson cannot decode, change nothing.

  KEYS[1] active   KEYS[2] delayed   KEYS[3] marker   KEYS[4] meta
  KEYS[5] events   KEYS[6] stalled
  ARGV[1] job key prefix
  ARGV[2] now (epoch ms)
  ARGV[3] job id
  ARGV[4] lock token
  ARGV[5] delay (ms)
  ARGV[6] JSON object of job fields to set (failedReason, stacktrace)
  ARGV[7] "1": the processor defers its own job (Job.move_to_delayed, BullMQ's skipAttempt):
          no attempt is counted and no "mbf" record is made, so a run that goes on to
          complete the job is refused (-2), as in BullMQ
  Output: 0, or -1 no such job (its id still leaves "active", see releaseActiveJob),
          -2 lock missing, -3 not active, -6 lock held by another worker. A re-run
          of a call that succeeded (its reply was lost) answers 0 again, changing nothing.
  Job fields: sets "mbf" (minibull's own) to [token], see releaseActiveJob's endedBy.
  Events: delayed (with the due time in ms, and "ts", the clock's now).
]]
local rcall = redis.call
-- @include "releaseActiveJob"
-- @include "jobFields"
-- @include "getDelayedScore"
-- @include "addDelayMarker"
-- @include "emitEvent"

local activeKey, delayedKey, markerKey = KEYS[1], KEYS[2], KEYS[3]
local metaKey, eventsKey, stalledKey = KEYS[4], KEYS[5], KEYS[6]
local jobId, token, delay = ARGV[3], ARGV[4], tonumber(ARGV[5])
local jobKey = ARGV[1] .. jobId
local fields = decodeJobFields(ARGV[6])

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
local deferred = ARGV[7] == "1"
if not deferred then
  fields["mbf"] = cjson.encode({token})
end
setJobFields(jobKey, fields)
local score, due = getDelayedScore(delayedKey, ARGV[2], delay)
if not deferred then
  rcall("HINCRBY", jobKey, "atm", 1)
end
rcall("HSET", jobKey, "delay", delay)
rcall("ZADD", delayedKey, score, jobId)
emitEvent(eventsKey, metaKey, "delayed", "jobId", jobId, "delay", due, "prev", "active",
          "ts", ARGV[2])
addDelayMarker(markerKey, delayedKey)
return 0
