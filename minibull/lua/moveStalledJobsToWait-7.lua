--[[
  The stalled-job sweep, run by every worker every stalled_interval; the
  "stalled-check" key lets only one of them do it per interval.
  1. Jobs suspected last time (in "stalled") whose lock has expired are moved
     back to "wait", at the end that runs next. A job stalled more than
     max stalled count times is marked to fail ("defa"): the worker that
     picks it up fails it (BullMQ v6). A job scheduler's run is exempt while
     its scheduler exists (BullMQ's moveStalledJobsToWait: failing it would
     stop the schedule, since the next run is planned when a run starts).
     A suspect whose hash is gone (deleted, evicted) leaves "active" for good:
     bringing it back would hand workers a job with no data, again and again.
  2. Every job now in "active" becomes a suspect; a live worker clears the
     suspicion when it renews the lock.

  KEYS[1] stalled   KEYS[2] wait     KEYS[3] active   KEYS[4] stalled-check
  KEYS[5] meta      KEYS[6] marker   KEYS[7] events
  ARGV[1] job key prefix
  ARGV[2] max stalled count
  ARGV[3] now (epoch ms)
  ARGV[4] check interval (ms)
  ARGV[5] scheduler hash prefix ("bull:<queue>:repeat:")
  Output: the ids moved back to wait.
  Events: stalled, waiting (with "ts", the clock's now).
]]
local rcall = redis.call
-- @include "isQueuePaused"
-- @include "addBaseMarker"
-- @include "emitEvent"
-- @include "batches"

local stalledKey, waitKey, activeKey, checkKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local metaKey, markerKey, eventsKey = KEYS[5], KEYS[6], KEYS[7]
local prefix, maxStalledCount = ARGV[1], tonumber(ARGV[2])

if rcall("EXISTS", checkKey) == 1 then
  return {}
end
rcall("SET", checkKey, ARGV[3], "PX", ARGV[4])

-- True for the run of a job scheduler that still exists.
local function isLiveSchedulerRun(jobKey)
  local schedulerId = rcall("HGET", jobKey, "rjk")
  return schedulerId and rcall("EXISTS", ARGV[5] .. schedulerId) == 1
end

local recovered = {}
local suspects = rcall("SMEMBERS", stalledKey)
rcall("DEL", stalledKey)
for _, jobId in ipairs(suspects) do
  local jobKey = prefix .. jobId
  if rcall("EXISTS", jobKey .. ":lock") == 0 and rcall("LREM", activeKey, 1, jobId) > 0 then
    if rcall("EXISTS", jobKey) == 1 then
      local stalledCount = rcall("HINCRBY", jobKey, "stc", 1)
      if stalledCount > maxStalledCount and not isLiveSchedulerRun(jobKey) then
        rcall("HSET", jobKey, "defa", "job stalled more than allowable limit")
      end
      rcall("RPUSH", waitKey, jobId)
      emitEvent(eventsKey, metaKey, "stalled", "jobId", jobId, "ts", ARGV[3])
      emitEvent(eventsKey, metaKey, "waiting", "jobId", jobId, "prev", "active", "ts", ARGV[3])
      table.insert(recovered, jobId)
    end
  end
end
if #recovered > 0 then
  addBaseMarker(markerKey, isQueuePaused(metaKey))
end

local active = rcall("LRANGE", activeKey, 0, -1)
for from, to in batches(#active, UNPACK_BATCH) do
  rcall("SADD", stalledKey, unpack(active, from, to))
end
return recovered
