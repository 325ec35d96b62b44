--[[
  Queue.promote_jobs: runs up to ARGV[2] delayed jobs now, soonest due first, each
  into "wait" or "prioritized" by its priority. The client calls it until it moves
  fewer than asked. BullMQ runs its moveJobsToWait for this, which pushes every job
  to "wait" whatever its priority ("does not support jobs with priorities") and leaves
  the old "delay" in the hash; this keeps priorities and sets "delay" to 0, as promote
  does (tests/interop/test_changing_jobs.py shows both).

  KEYS[1] delayed   KEYS[2] wait   KEYS[3] prioritized   KEYS[4] pc
  KEYS[5] marker    KEYS[6] meta   KEYS[7] events
  ARGV[1] job key prefix
  ARGV[2] how many to move in this call (at most 1000: one call holds Redis)
  Output: how many ids left "delayed".  Events: waiting (prev: delayed), one per job.
]]
local rcall = redis.call
-- @include "isQueuePaused"
-- @include "addJobToWait"
-- @include "addBaseMarker"
-- @include "emitEvent"
-- @include "batches"

local delayedKey, waitKey, prioritizedKey, pcKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local markerKey, metaKey, eventsKey = KEYS[5], KEYS[6], KEYS[7]
local jobIds = rcall("ZRANGE", delayedKey, 0, tonumber(ARGV[2]) - 1)
if #jobIds == 0 then
  return 0
end
for from, to in batches(#jobIds, UNPACK_BATCH) do
  rcall("ZREM", delayedKey, unpack(jobIds, from, to))
end
for _, jobId in ipairs(jobIds) do
  local jobKey = ARGV[1] .. jobId
  -- An id whose hash is gone (deleted by hand) just leaves "delayed": no job without data.
  if rcall("EXISTS", jobKey) == 1 then
    local priority = tonumber(rcall("HGET", jobKey, "priority")) or 0
    addJobToWait(waitKey, prioritizedKey, pcKey, jobId, priority, "LPUSH")
    rcall("HSET", jobKey, "delay", 0)
    emitEvent(eventsKey, metaKey, "waiting", "jobId", jobId, "prev", "delayed")
  end
end
addBaseMarker(markerKey, isQueuePaused(metaKey))
return #jobIds
