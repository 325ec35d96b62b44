--[[
  Reads the queue's meta fields a worker's step needs, in one HMGET:
  {paused, concurrency, max, duration, opts.maxLenEvents}; and tells emitEvent
  the events limit, so that it needs no read of its own.
]]
-- @include "emitEvent"
local function readQueueMeta(metaKey)
  local meta = rcall("HMGET", metaKey, "paused", "concurrency", "max", "duration",
                     "opts.maxLenEvents")
  maxEventsOfThisRun = maxEventsOfThisRun or tonumber(meta[5]) or 10000
  return meta
end
