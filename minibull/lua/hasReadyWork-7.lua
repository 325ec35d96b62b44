--[[
  A virtual clock's question before it moves time on (Queue.has_ready_work): could a
  worker take a job now, or is a wake-up call pending? Jobs held back by the queue's
  pause, its global concurrency cap or a rate limit (the queue's, else the worker's) are
  not ready: only a running job, or real time, frees them. Reads only, and decides with
  the same includes as takeNextJob, so that the two cannot disagree.

  KEYS[1] marker   KEYS[2] meta   KEYS[3] wait   KEYS[4] prioritized
  KEYS[5] delayed  KEYS[6] active KEYS[7] limiter
  ARGV[1] now (epoch ms)
  ARGV[2] the worker's rate limit: jobs per window (0: none)
  Output: 1 ready (a job waits, a delayed job is due, or the marker is set), else 0.
]]
local rcall = redis.call
-- @include "readQueueMeta"
-- @include "queueLimits"
-- @include "getDelayedScore"

local markerKey, metaKey, waitKey, prioritizedKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local delayedKey, activeKey, limiterKey = KEYS[5], KEYS[6], KEYS[7]
local now, limitMax = tonumber(ARGV[1]), tonumber(ARGV[2])

local meta = readQueueMeta(metaKey)
local ttl = rateLimitReached(limiterKey, (rateLimitOf(meta, limitMax, 0)))
if meta[1] ~= false or concurrencyCapped(meta, activeKey) or (ttl and ttl > 0) then
  return 0  -- a marker left behind cannot start anything either
end
if rcall("ZCARD", markerKey) > 0 or rcall("LLEN", waitKey) > 0
   or rcall("ZCARD", prioritizedKey) > 0
   or rcall("ZCOUNT", delayedKey, 0, highestDueScore(now)) > 0 then
  return 1
end
return 0
