--[[
  Queue.get_metrics: a queue's metrics of one kind (completed or failed), read in one
  step, as BullMQ's getMetrics.

  KEYS[1] metrics (metrics:<kind>)   KEYS[2] metrics-data (metrics:<kind>:data)
  ARGV[1] first point (0: the newest minute)
  ARGV[2] last point (-1: the oldest)
  Output: {{count, prevTS, prevCount}, the points from first to last, how many points}
]]
local rcall = redis.call

local meta = rcall("HMGET", KEYS[1], "count", "prevTS", "prevCount")
local data = rcall("LRANGE", KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]))
return {meta, data, rcall("LLEN", KEYS[2])}
