--[[
  Creates or replaces a job scheduler (BullMQ's upsertJobScheduler): the
  scheduler id in the "repeat" zset, scored by its next run, its options and
  job template in the hash "repeat:<id>", and the job of its next run.
  Replacing a scheduler drops its pending (not yet running) run first.

  KEYS[1] repeat    KEYS[2] delayed   KEYS[3] wait   KEYS[4] prioritized
  KEYS[5] pc        KEYS[6] marker    KEYS[7] meta   KEYS[8] events
  ARGV[1] job key prefix
  ARGV[2] now (epoch ms)
  ARGV[3] scheduler id
  ARGV[4] its next run (epoch ms)
  ARGV[5] JSON object of the hash fields (name, data, opts, pattern or every,
          tz, limit, startDate, endDate), all strings
  ARGV[6] scheduler hash prefix ("bull:<queue>:repeat:")
  Output: {job id of the next run, 1 if that job was added}.
  Events: added, delayed or waiting.
]]
local rcall = redis.call
-- @include "isQueuePaused"
-- @include "addSchedulerJob"

local k = schedulerKeys()
local prefix, now, schedulerId = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local nextMillis = tonumber(ARGV[4])
local schedulerKey = ARGV[6] .. schedulerId

local runs = tonumber(rcall("HGET", schedulerKey, "ic")) or 0
local previous = rcall("ZSCORE", k.repeatKey, schedulerId)
if previous and removePendingRun(k, prefix, schedulerId, math.floor(tonumber(previous))) then
  runs = runs - 1  -- the replaced run never ran: it does not count against the limit
end
rcall("DEL", schedulerKey)
for field, value in pairs(cjson.decode(ARGV[5])) do
  rcall("HSET", schedulerKey, field, value)
end
rcall("HSET", schedulerKey, "ic", runs)
rcall("ZADD", k.repeatKey, nextMillis, schedulerId)
local jobId, added = addSchedulerJob(k, prefix, schedulerId, schedulerKey, nextMillis, now,
                                     isQueuePaused(k.meta))
return {jobId, added}
