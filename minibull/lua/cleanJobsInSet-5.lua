--[[
  Queue.clean: removes up to ARGV[4] jobs of one state that are older than a
  grace period (finished jobs by finishedOn, others by their timestamp), oldest
  first, each as includes/removeJob does. Skipped: locked (running) jobs, and
  the pending run of a job scheduler (as BullMQ's cleanSet: removing it would
  stop the schedule).
  The state is read a page of 1000 ids at a time (ZRANGEBYSCORE ... LIMIT for
  finished jobs, as BullMQ), and reading stops once ARGV[4] jobs are removed.

  KEYS[1] state (its list or zset)   KEYS[2] meta   KEYS[3] events
  KEYS[4] stalled   KEYS[5] repeat
  ARGV[1] job key prefix
  ARGV[2] "list" or "zset"
  ARGV[3] remove jobs at or before this time (epoch ms)
  ARGV[4] at most this many (0: no limit)
  ARGV[5] "1" when the state is completed or failed
  ARGV[6] deduplication key prefix ("bull:<queue>:de:"): ids of removed jobs are freed
  Output: the removed ids.  Events: cleaned (with the count).
]]
local rcall = redis.call
-- @include "removeJob"
-- @include "schedulerRunId"
-- @include "emitEvent"

local setKey, prefix, kind = KEYS[1], ARGV[1], ARGV[2]
local cutoff, limit, finished = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5] == "1"
local PAGE = 1000

-- The next page of candidates, oldest first, after the `kept` oldest that stay.
-- Lists: the right end is the oldest; finished zsets: by finishedOn; others: by score.
local function nextPage(kept)
  if kind == "list" then
    local page = rcall("LRANGE", setKey, -(kept + PAGE), -(kept + 1))
    local oldestFirst = {}
    for i = #page, 1, -1 do
      oldestFirst[#oldestFirst + 1] = page[i]
    end
    return oldestFirst
  elseif finished then
    return rcall("ZRANGEBYSCORE", setKey, 0, cutoff, "LIMIT", kept, PAGE)
  end
  return rcall("ZRANGE", setKey, kept, kept + PAGE - 1)
end

local function mayRemove(jobId)
  local jobKey = prefix .. jobId
  local oldEnough = finished or (tonumber(rcall("HGET", jobKey, "timestamp")) or 0) <= cutoff
  return oldEnough and rcall("EXISTS", jobKey .. ":lock") == 0
         and not isPendingSchedulerRun(KEYS[5], prefix, jobId)
end

local removed, kept = {}, 0
repeat
  local page = nextPage(kept)
  for _, jobId in ipairs(page) do
    if limit > 0 and #removed >= limit then
      break
    end
    if mayRemove(jobId) then
      if kind == "list" then
        rcall("LREM", setKey, -1, jobId)
      else
        rcall("ZREM", setKey, jobId)
      end
      removeJob(prefix, jobId, ARGV[6], KEYS[4])
      removed[#removed + 1] = jobId
    else
      kept = kept + 1
    end
  end
until #page < PAGE or (limit > 0 and #removed >= limit)
emitEvent(KEYS[3], KEYS[2], "cleaned", "count", #removed)
return removed
