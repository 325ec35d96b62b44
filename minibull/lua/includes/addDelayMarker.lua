--[[
  Tells idle workers when the next delayed job is due: member "1" at the
  due time in ms (includes/getDelayedScore decodes the delayed scores).
  Returns that time, or 0 when nothing is delayed.
]]
-- @include "getDelayedScore"
local function nextDelayedTimestamp(delayedKey)
  local first = rcall("ZRANGE", delayedKey, 0, 0, "WITHSCORES")
  if first[2] then
    return dueOfScore(first[2])
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
