--[[
  Removes a job scheduler and its pending run (a running one finishes).

  KEYS[1] repeat    KEYS[2] delayed   KEYS[3] wait   KEYS[4] prioritized
  KEYS[5] pc        KEYS[6] marker    KEYS[7] meta   KEYS[8] events
  ARGV[1] job key prefix
  ARGV[2] scheduler id
  ARGV[3] scheduler hash prefix ("bull:<queue>:repeat:")
  Output: 1 if it existed, else 0.
]]
local rcall = redis.call
-- @include "addSchedulerJob"

local k = schedulerKeys()
local prefix, schedulerId = ARGV[1], ARGV[2]
local next = rcall("ZSCORE", k.repeatKey, schedulerId)
if next then
  removePendingRun(k, prefix, schedulerId, math.floor(tonumber(next)))
end
rcall("ZREM", k.repeatKey, schedulerId)
return rcall("DEL", ARGV[3] .. schedulerId) + (next and 1 or 0) > 0 and 1 or 0
