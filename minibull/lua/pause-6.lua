--[[
  Pauses or resumes the queue for every worker. Paused jobs stay in "wait";
  workers stop taking them because meta has "paused" and the marker is gone.

  KEYS[1] meta   KEYS[2] marker   KEYS[3] wait   KEYS[4] prioritized
  KEYS[5] delayed   KEYS[6] events
  ARGV[1] "paused" or "resumed"
  Output: 0.  Events: paused or resumed.
]]
local rcall = redis.call
-- @include "addDelayMarker"
-- @include "emitEvent"

local metaKey, markerKey = KEYS[1], KEYS[2]
if ARGV[1] == "paused" then
  rcall("HSET", metaKey, "paused", 1)
  rcall("DEL", markerKey)
else
  rcall("HDEL", metaKey, "paused")
  if rcall("LLEN", KEYS[3]) + rcall("ZCARD", KEYS[4]) > 0 then
    rcall("ZADD", markerKey, 0, "0")
  else
    addDelayMarker(markerKey, KEYS[5])
  end
end
emitEvent(KEYS[6], metaKey, ARGV[1])
return 0
