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
  The callers keep a scheduler's pending run (includes/schedulerRunId's isPendingSchedulerRun).
]]
-- @include "removeDeduplicationKey"
-- @include "flowParent"
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
