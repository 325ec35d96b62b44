--[[
  Queue.clean: removes up to ARGV[4] jobs of one state that are older than a
  grace period: finished jobs by finishedOn, others by their timestamp.
  Locked (running) jobs are never removed.

  KEYS[1] the state's list or zset   KEYS[2] meta   KEYS[3] events
  ARGV[1] job key prefix
  ARGV[2] "list" or "zset"
  ARGV[3] remove jobs at or before this time (epoch ms)
  ARGV[4] at most this many (0: no limit)
  ARGV[5] "1" when the state is completed or failed
  ARGV[6] deduplication key prefix ("bull:<queue>:de:"): ids of removed jobs are freed
  Output: the removed ids.  Events: cleaned (with the count).
]]
local rcall = redis.call
-- @include "removeJobKeys"
-- @include "removeDeduplicationKey"
-- @include "emitEvent"

local setKey, prefix, kind = KEYS[1], ARGV[1], ARGV[2]
local cutoff, limit, finished = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5] == "1"
local candidates
if kind == "list" then
  candidates = rcall("LRANGE", setKey, 0, -1)
elseif finished then
  candidates = rcall("ZRANGEBYSCORE", setKey, 0, cutoff)
else
  candidates = rcall("ZRANGE", setKey, 0, -1)
end
local removed = {}
for _, jobId in ipairs(candidates) do
  if limit > 0 and #removed >= limit then
    break
  end
  local jobKey = prefix .. jobId
  local oldEnough = finished or (tonumber(rcall("HGET", jobKey, "timestamp")) or 0) <= cutoff
  if oldEnough and rcall("EXISTS", jobKey .. ":lock") == 0 then
    if kind == "list" then
      rcall("LREM", setKey, 0, jobId)
    else
      rcall("ZREM", setKey, jobId)
    end
    removeDeduplicationKey(ARGV[6], jobKey, jobId)
    removeJobKeys(jobKey)
    table.insert(removed, jobId)
  end
end
emitEvent(KEYS[3], KEYS[2], "cleaned", "count", #removed)
return removed
