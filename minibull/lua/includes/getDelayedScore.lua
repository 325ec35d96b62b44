--[[
  The delayed-zset score of a job due at now + delay: due ms * 4096, plus a
  sequence number so that jobs due in the same millisecond keep their order.
  Returns the score and the due time in ms.
]]
local function getDelayedScore(delayedKey, now, delay)
  local due = tonumber(now) + tonumber(delay)
  local lowest = due * 0x1000
  local highest = (due + 1) * 0x1000 - 1
  local last = rcall("ZREVRANGEBYSCORE", delayedKey, highest, lowest, "WITHSCORES", "LIMIT", 0, 1)
  if last[2] then
    return math.min(tonumber(last[2]) + 1, highest), due
  end
  return lowest, due
end
