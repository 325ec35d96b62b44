--[[
  BullMQ's id of one run of a job scheduler: "repeat:<scheduler id>:<millis>",
  the one place that builds it. A scheduler waits on one run at a time, its
  pending run: the id of the time that is its score in the "repeat" zset.
  isRunPendingFor: is jobId the pending run of scheduler schedulerId?
  isPendingSchedulerRun: is jobId the pending run of the scheduler it belongs to (its
  hash's "rjk"; BullMQ's isJobSchedulerJob)? Removing it alone would stop the schedule
  for good, since the next run is planned when a worker takes this one: removeJob
  refuses it (-8), clean and drain skip it.
]]
local function schedulerRunId(schedulerId, millis)
  return "repeat:" .. schedulerId .. ":" .. string.format("%.0f", millis)
end

local function isRunPendingFor(repeatKey, schedulerId, jobId)
  local nextMillis = rcall("ZSCORE", repeatKey, schedulerId)
  return nextMillis ~= false and jobId == schedulerRunId(schedulerId, tonumber(nextMillis))
end

local function isPendingSchedulerRun(repeatKey, prefix, jobId)
  local schedulerId = rcall("HGET", prefix .. jobId, "rjk")
  return schedulerId ~= false and isRunPendingFor(repeatKey, schedulerId, jobId)
end
