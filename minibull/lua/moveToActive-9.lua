--[[
  Gives a worker the next job: promotes delayed jobs that are due, then takes
  the oldest job of "wait" (its right end), else the best of "prioritized",
  moves it to "active" and locks it with the worker's token.

  KEYS[1] wait     KEYS[2] active   KEYS[3] prioritized   KEYS[4] delayed
  KEYS[5] pc       KEYS[6] marker   KEYS[7] meta          KEYS[8] events
  KEYS[9] limiter
  ARGV[1] job key prefix
  ARGV[2] now (epoch ms)
  ARGV[3] lock token
  ARGV[4] lock duration (ms)
  ARGV[5] worker id (stored as "pb", processed by, as BullMQ does)
  ARGV[6] the worker's rate limit: jobs per window (0: none)
  ARGV[7] the worker's rate-limit window (ms)
  The queue's own limits in meta win: "concurrency" (jobs active at once, for
  all workers), "max" and "duration" (the global rate limit).
  Output: {job hash as a flat list, job id, 0, 0} when a job was taken,
          else {0, 0, when the next delayed job is due in ms (0: none),
          ms until the rate limit lets a job start (0: not limited)}.
  Events: waiting (for promoted jobs), active (with "ts", the clock's now, and "worker";
          minibull's additions, for job timelines on virtual time).
]]
local rcall = redis.call
-- @include "promoteDelayedJobs"
-- @include "addDelayMarker"
-- @include "emitEvent"

local waitKey, activeKey, prioritizedKey, delayedKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local pcKey, markerKey, metaKey, eventsKey = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local prefix = ARGV[1]
local now = tonumber(ARGV[2])
local limiterKey = KEYS[9]
local meta = rcall("HMGET", metaKey, "paused", "concurrency", "max", "duration")
local paused = meta[1] ~= false
local maxJobs = tonumber(meta[3])
local window = tonumber(meta[4])
if not maxJobs and tonumber(ARGV[6]) > 0 then
  maxJobs, window = tonumber(ARGV[6]), tonumber(ARGV[7])
end

promoteDelayedJobs(delayedKey, waitKey, prioritizedKey, pcKey, markerKey, metaKey, eventsKey,
                   prefix, now, paused)
if maxJobs and (tonumber(rcall("GET", limiterKey)) or 0) >= maxJobs then
  local ttl = rcall("PTTL", limiterKey)
  if ttl > 0 then
    return {0, 0, 0, ttl}
  end
  rcall("DEL", limiterKey)
end
local concurrency = tonumber(meta[2])
if paused or (concurrency and rcall("LLEN", activeKey) >= concurrency) then
  return {0, 0, 0, 0}
end

local jobId = rcall("RPOPLPUSH", waitKey, activeKey)
if not jobId then
  local best = rcall("ZPOPMIN", prioritizedKey)
  if best[1] then
    jobId = best[1]
    rcall("LPUSH", activeKey, jobId)
    if rcall("ZCARD", prioritizedKey) == 0 then
      rcall("DEL", pcKey)
    end
  end
end
if not jobId then
  return {0, 0, nextDelayedTimestamp(delayedKey), 0}
end
if maxJobs and rcall("INCR", limiterKey) == 1 then
  rcall("PEXPIRE", limiterKey, window)
end

local jobKey = prefix .. jobId
rcall("SET", jobKey .. ":lock", ARGV[3], "PX", ARGV[4])
rcall("HSET", jobKey, "processedOn", now, "pb", ARGV[5])
rcall("HINCRBY", jobKey, "ats", 1)
emitEvent(eventsKey, metaKey, "active", "jobId", jobId, "prev", "waiting", "ts", now,
          "worker", ARGV[5])
-- More work left: wake another idle worker.
if rcall("LLEN", waitKey) > 0 or rcall("ZCARD", prioritizedKey) > 0 then
  rcall("ZADD", markerKey, 0, "0")
end
return {rcall("HGETALL", jobKey), jobId, 0, 0}
