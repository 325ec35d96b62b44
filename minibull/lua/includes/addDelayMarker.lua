--[[
  Tells idle workers when the next delayed job is due: member "1" at the
  due time in ms (delayed scores are ms * 4096 + sequence).
  Returns that time, or 0 when nothing is delayed.
]]
local function nextDelayedTimestamp(delayedKey)
  local first = rcall("ZRANGE", delayedKey, 0, 0, "WITHSCORES")
  if first[2] then
    return math.floor(tonumber(first[2]) / 0x1000)
  end
  return 0
end

local function addDelayMarker(markerKey, delayedKey)
  local nextTimestamp = nextDelayedTimestamp(delayedKey)
  if nextTimestamp > 0 then
    rcall("ZADD", markerKey, nextTimestamp, "1")
  end
  return nextTimestamp
end
