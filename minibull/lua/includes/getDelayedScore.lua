--[[
  The delayed zset's score, BullMQ's encoding, in this one place: a job due at
  ms `due` scores due * 4096 plus a sequence number below 4096, so that jobs due
  in the same millisecond keep their order.
  getDelayedScore: the score of a job due at now + delay, and that due time (ms).
  highestDueScore: the highest score of a job due at or before ms `due`.
  dueOfScore: the due time (ms) of a score.
]]
local function highestDueScore(due)
  return (tonumber(due) + 1) * 0x1000 - 1
end

local function dueOfScore(score)
  return math.floor(tonumber(score) / 0x1000)
end

local function getDelayedScore(delayedKey, now, delay)
  local due = tonumber(now) + tonumber(delay)
  local lowest = due * 0x1000
  local highest = highestDueScore(due)
  local last = rcall("ZREVRANGEBYSCORE", delayedKey, highest, lowest, "WITHSCORES", "LIMIT", 0, 1)
  if last[2] then
    return math.min(tonumber(last[2]) + 1, highest), due
  end
  return lowest, due
end
