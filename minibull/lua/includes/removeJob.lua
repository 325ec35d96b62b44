--[[
  The one way a job is deleted (removeJob, cleanJobsInSet, drain, trimFinishedJobs,
  moveToFinished's removeOnComplete/Fail, a scheduler's replaced run), as BullMQ's
  removeJob include: its hash, lock and logs, its stalled mark, and the deduplication
  id it holds (only if that still points at it). The caller takes the id out of its
  state's list or zset. dedupPrefix and stalledKey may be nil where the caller has no
  such key (a scheduler's run has no deduplication id; waiting jobs have no stalled mark).
  Flows: a removed child is no longer a dependency of its parent (which moves on if it was
  the last, includes/flowParent), and a parent's own flow keys go with it. Its children
  stay: only removeJob-11 (Job.remove) removes them too, as BullMQ's removeJob does.

  isPendingSchedulerRun: the run a job scheduler waits on (BullMQ's isJobSchedulerJob).
  Removing it alone would stop the schedule for good, since the next run is planned when
  a worker takes this one: removeJob refuses it (-8), clean and drain skip it.
]]
-- @include "removeDeduplicationKey"
-- @include "flowParent"
-- @include "schedulerRunId"
local function removeJob(prefix, jobId, dedupPrefix, stalledKey)
  local jobKey = prefix .. jobId
  if dedupPrefix then
    removeDeduplicationKey(dedupPrefix, jobKey, jobId)
  end
  if stalledKey then
    rcall("SREM", stalledKey, jobId)
  end
  removeParentDependency(jobKey, nil)
  rcall("DEL", jobKey, jobKey .. ":lock", jobKey .. ":logs", jobKey .. ":dependencies",
        jobKey .. ":processed", jobKey .. ":failed", jobKey .. ":unsuccessful")
end

local function isPendingSchedulerRun(repeatKey, prefix, jobId)
  local schedulerId = rcall("HGET", prefix .. jobId, "rjk")
  if not schedulerId then
    return false
  end
  local nextMillis = rcall("ZSCORE", repeatKey, schedulerId)
  return nextMillis ~= false and jobId == schedulerRunId(schedulerId, tonumber(nextMillis))
end
