--[[
  Adds the job of one run of a job scheduler, with BullMQ's id
  "repeat:<scheduler id>:<millis>", delayed until millis. The id makes it
  exactly one job per tick: if it exists already, nothing is added. Counts the
  runs in the scheduler hash's "ic" field.
]]
-- @include "addJobToWait"
-- @include "addBaseMarker"
-- @include "addDelayMarker"
-- @include "getDelayedScore"
-- @include "emitEvent"
-- @include "removeJob"
-- @include "schedulerRunId"
local function addSchedulerJob(k, prefix, schedulerId, schedulerKey, millis, now, paused)
  local jobId = schedulerRunId(schedulerId, millis)
  local jobKey = prefix .. jobId
  if rcall("EXISTS", jobKey) == 1 then
    return jobId, 0
  end
  local template = rcall("HMGET", schedulerKey, "name", "data", "opts")
  local opts = cjson.decode(template[3] or "{}")
  local priority = tonumber(opts["priority"]) or 0
  local delay = math.max(0, millis - now)
  -- BullMQ's workers plan the next run from these (opts.repeat, count, prevMillis).
  local s = rcall("HMGET", schedulerKey, "every", "pattern", "tz", "limit", "startDate",
                  "endDate", "ic")
  opts["repeat"] = {every = tonumber(s[1]), pattern = s[2] or nil, tz = s[3] or nil,
                    limit = tonumber(s[4]), startDate = tonumber(s[5]),
                    endDate = tonumber(s[6]), count = (tonumber(s[7]) or 0) + 1}
  opts["repeatJobKey"], opts["jobId"], opts["prevMillis"] = schedulerId, jobId, millis
  rcall("HSET", jobKey, "name", template[1], "data", template[2] or "{}",
        "opts", cjson.encode(opts), "timestamp", now, "delay", delay, "priority", priority,
        "rjk", schedulerId)
  rcall("HINCRBY", schedulerKey, "ic", 1)
  emitEvent(k.events, k.meta, "added", "jobId", jobId, "name", template[1])
  if delay > 0 then
    local score, due = getDelayedScore(k.delayed, now, delay)
    rcall("ZADD", k.delayed, score, jobId)
    emitEvent(k.events, k.meta, "delayed", "jobId", jobId, "delay", due)
    addDelayMarker(k.marker, k.delayed)
  else
    local pushCmd = "LPUSH"
    if opts["lifo"] == true then
      pushCmd = "RPUSH"
    end
    addJobToWait(k.wait, k.prioritized, k.pc, jobId, priority, pushCmd)
    addBaseMarker(k.marker, paused)
    emitEvent(k.events, k.meta, "waiting", "jobId", jobId)
  end
  return jobId, 1
end

-- The scheduler's keys, named.
local function schedulerKeys()
  return {repeatKey = KEYS[1], delayed = KEYS[2], wait = KEYS[3], prioritized = KEYS[4],
          pc = KEYS[5], marker = KEYS[6], meta = KEYS[7], events = KEYS[8]}
end

-- Removes the scheduler's pending run (not a running one), as includes/removeJob does;
-- returns true if there was one.
local function removePendingRun(k, prefix, schedulerId, millis)
  local jobId = schedulerRunId(schedulerId, millis)
  local removed = rcall("ZREM", k.delayed, jobId) + rcall("ZREM", k.prioritized, jobId)
                  + rcall("LREM", k.wait, 0, jobId)
  if removed > 0 then
    removeJob(prefix, jobId, nil, nil)
  end
  return removed > 0
end
