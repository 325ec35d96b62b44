--[[
  Keeps a finished set (completed or failed) within its limits: removes jobs
  older than keep.age seconds, then all but the newest keep.count jobs, each as
  includes/removeJob does.
  One run removes at most TRIM_LIMIT jobs per rule (BullMQ's removeJobsByMaxAge takes
  1000 at a time), so one finish never holds Redis for long: a set far over its limit
  (a queue that kept everything, then set a count) shrinks over the next finishes.
  The count rule removes by rank (ZREMRANGEBYRANK, as BullMQ's removeJobsByMaxCount),
  so neither a big excess nor a huge count ends in an error after the job was written.
]]
-- @include "removeJob"
-- @include "batches"
local TRIM_LIMIT = 1000

local function trimFinishedJobs(setKey, prefix, keep, now, dedupPrefix, stalledKey)
  if keep["age"] then
    local oldest = now - keep["age"] * 1000
    local jobIds = rcall("ZRANGEBYSCORE", setKey, 0, oldest, "LIMIT", 0, TRIM_LIMIT)
    for _, jobId in ipairs(jobIds) do
      removeJob(prefix, jobId, dedupPrefix, stalledKey)
    end
    for from, to in batches(#jobIds, UNPACK_BATCH) do
      rcall("ZREM", setKey, unpack(jobIds, from, to))
    end
  end
  if keep["count"] and keep["count"] > 0 then
    local excess = math.min(rcall("ZCARD", setKey) - keep["count"], TRIM_LIMIT)
    if excess > 0 then
      for _, jobId in ipairs(rcall("ZRANGE", setKey, 0, excess - 1)) do
        removeJob(prefix, jobId, dedupPrefix, stalledKey)
      end
      rcall("ZREMRANGEBYRANK", setKey, 0, excess - 1)
    end
  end
end
