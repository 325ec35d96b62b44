--[[
  Job.change_priority (BullMQ's changePriority): stores the new priority, and a
  job that waits to run ("wait" or "prioritized") moves to its new place in line:
  priority 0 to "wait" (LPUSH, or RPUSH with lifo: next to run), else into
  "prioritized" behind the jobs of the same priority (with lifo: in front of them).
  A job in any other state keeps the priority for when it next waits.

  KEYS[1] wait   KEYS[2] prioritized   KEYS[3] pc   KEYS[4] marker   KEYS[5] meta
  ARGV[1] job key prefix
  ARGV[2] job id
  ARGV[3] the new priority (0: none)
  ARGV[4] "1" for lifo, else "0"
  Output: 0, or -1 no such job (nothing changes).
]]
local rcall = redis.call
-- @include "isQueuePaused"
-- @include "addJobToWait"
-- @include "addBaseMarker"

local waitKey, prioritizedKey, pcKey, markerKey, metaKey = KEYS[1], KEYS[2], KEYS[3],
                                                           KEYS[4], KEYS[5]
local jobId, priority, lifo = ARGV[2], tonumber(ARGV[3]), ARGV[4] == "1"
local jobKey = ARGV[1] .. jobId

if rcall("EXISTS", jobKey) == 0 then
  return -1
end
if rcall("ZREM", prioritizedKey, jobId) > 0 or rcall("LREM", waitKey, -1, jobId) > 0 then
  if priority > 0 and lifo then
    -- BullMQ's pushBackJobWithPriority: counter 0, ahead of the same priority.
    rcall("ZADD", prioritizedKey, priority * 0x100000000, jobId)
  else
    addJobToWait(waitKey, prioritizedKey, pcKey, jobId, priority, lifo and "RPUSH" or "LPUSH")
  end
  addBaseMarker(markerKey, isQueuePaused(metaKey))
end
rcall("HSET", jobKey, "priority", priority)
return 0
