--[[
  Puts a rate-limited job back (BullMQ's moveJobFromActiveToWait): the processor
  raised RateLimitError, so the run counts as no attempt ("atm" stays). The job
  leaves "active" and goes to the front of the line: RPUSH to "wait" (the right
  end runs next), or into "prioritized" ahead of its equals (score priority * 2^32,
  counter 0). Checks first, then writes: a refused call changes nothing.

  KEYS[1] active   KEYS[2] wait     KEYS[3] stalled   KEYS[4] meta
  KEYS[5] limiter  KEYS[6] prioritized   KEYS[7] marker   KEYS[8] events
  ARGV[1] job key prefix
  ARGV[2] job id
  ARGV[3] lock token
  ARGV[4] now (epoch ms), for the event
  Output: the rate limit's time to live in ms (0: not limited), or -1 no such job
          (its id still leaves "active", see releaseActiveJob), -2 lock missing,
          -3 not active, -6 lock held by another worker. A re-run of a call that
          succeeded (its reply was lost) answers the time to live again, changing nothing.
  Job fields: sets "mbf" (minibull's own) to [token], see releaseActiveJob's endedBy.
  Events: waiting (prev "active", with "ts", the clock's now).
]]
local rcall = redis.call
-- @include "isQueuePaused"
-- @include "releaseActiveJob"
-- @include "addBaseMarker"
-- @include "emitEvent"

local activeKey, waitKey, stalledKey, metaKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local limiterKey, prioritizedKey, markerKey, eventsKey = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local jobId, token = ARGV[2], ARGV[3]
local jobKey = ARGV[1] .. jobId

local function limiterTtl()
  local ttl = rcall("PTTL", limiterKey)
  return ttl > 0 and ttl or 0
end

if rcall("EXISTS", jobKey) == 0 then
  dropMissingJob(activeKey, stalledKey, jobKey, jobId, token)
  return -1
end
local lockError = releaseActiveJob(activeKey, stalledKey, jobKey, jobId, token)
if lockError == -2 and endedBy(rcall("HGET", jobKey, "mbf"), token) then
  return limiterTtl()  -- a re-run: this call ran already (see endedBy)
end
if lockError < 0 then
  return lockError
end
rcall("HSET", jobKey, "mbf", cjson.encode({token}))
local priority = tonumber(rcall("HGET", jobKey, "priority")) or 0
if priority > 0 then
  rcall("ZADD", prioritizedKey, priority * 0x100000000, jobId)
else
  rcall("RPUSH", waitKey, jobId)
end
addBaseMarker(markerKey, isQueuePaused(metaKey))
emitEvent(eventsKey, metaKey, "waiting", "jobId", jobId, "prev", "active", "ts", ARGV[4])
return limiterTtl()
