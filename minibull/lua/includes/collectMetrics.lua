--[[
  Counts one finished job in a queue's metrics, as BullMQ's collectMetrics: the hash
  metricsKey holds the running total ("count") and the total and time of the last data
  point ("prevCount", "prevTS"); the list dataKey holds one point per minute, newest
  first: how many jobs finished in that minute, with a 0 for each minute without a
  finish, at most maxDataPoints of them. A point is written by the first finish of a
  later minute, so the minute now running shows in "count" only.
]]
-- @include "batches"
local function collectMetrics(metricsKey, dataKey, maxDataPoints, timestamp)
  local count = rcall("HINCRBY", metricsKey, "count", 1) - 1
  local prevTS = rcall("HGET", metricsKey, "prevTS")
  if not prevTS then
    rcall("HSET", metricsKey, "prevTS", timestamp, "prevCount", 0)
    return
  end
  local n = math.min(math.floor(timestamp / 60000) - math.floor(prevTS / 60000), maxDataPoints)
  if n > 0 then
    local points = {count - rcall("HGET", metricsKey, "prevCount")}
    for i = 2, n do
      points[i] = 0
    end
    for from, to in batches(#points, UNPACK_BATCH) do
      rcall("LPUSH", dataKey, unpack(points, from, to))
    end
    rcall("LTRIM", dataKey, 0, maxDataPoints - 1)
    rcall("HSET", metricsKey, "prevCount", count, "prevTS", timestamp)
  end
end

-- moveToFinished's call: the keys are named from the job key prefix, as the job keys are
-- ("bull:q:" .. "metrics:completed"); maxDataPoints "" or nil: the worker keeps no metrics.
local function collectFinishMetrics(prefix, target, maxDataPoints, timestamp)
  if maxDataPoints and maxDataPoints ~= "" then
    local metricsKey = prefix .. "metrics:" .. target
    collectMetrics(metricsKey, metricsKey .. ":data", tonumber(maxDataPoints), timestamp)
  end
end
