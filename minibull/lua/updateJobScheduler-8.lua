--[[
  Plans a scheduler's next run, when a worker has just taken the job of the
  previous one: moves the scheduler to its next time and adds that job.
  Nothing happens unless the job taken is still the scheduler's pending run
  (includes/schedulerRunId): not if the scheduler was replaced or removed
  meanwhile, nor for a later attempt of an old run. A schedule that has ended
  (no next run, or its limit of runs reached) is removed.

  KEYS[1] repeat    KEYS[2] delayed   KEYS[3] wait   KEYS[4] prioritized
  KEYS[5] pc        KEYS[6] marker    KEYS[7] meta   KEYS[8] events
  ARGV[1] job key prefix
  ARGV[2] now (epoch ms)
  ARGV[3] scheduler id
  ARGV[4] the id of the run's job just taken
  ARGV[5] the next run (epoch ms, from the pending run's; 0: the schedule has ended)
  ARGV[6] scheduler hash prefix ("bull:<queue>:repeat:")
  Output: the job id of the next run, or "" if none was planned.
  Events: added, delayed or waiting.
]]
local rcall = redis.call
-- @include "isQueuePaused"
-- @include "addSchedulerJob"
-- @include "schedulerRunId"

local k = schedulerKeys()
local prefix, now, schedulerId = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local taken, nextMillis = ARGV[4], tonumber(ARGV[5])
local schedulerKey = ARGV[6] .. schedulerId

if not isRunPendingFor(k.repeatKey, schedulerId, taken) then
  return ""
end
local limit = tonumber(rcall("HGET", schedulerKey, "limit"))
local runs = tonumber(rcall("HGET", schedulerKey, "ic")) or 0
if nextMillis == 0 or (limit and runs >= limit) then
  rcall("ZREM", k.repeatKey, schedulerId)
  rcall("DEL", schedulerKey)
  return ""
end
rcall("ZADD", k.repeatKey, nextMillis, schedulerId)
local jobId = addSchedulerJob(k, prefix, schedulerId, schedulerKey, nextMillis, now,
                              isQueuePaused(k.meta))
return jobId
