--[[
  A processor that added children to its own job parks the job until they finish
  (Job.move_to_waiting_children, BullMQ's moveToWaitingChildren): out of "active",
  lock released, into "waiting-children". Nothing moves when no child is pending:
  the processor goes on.

  KEYS[1] active   KEYS[2] waiting-children   KEYS[3] stalled   KEYS[4] meta
  KEYS[5] events
  ARGV[1] job key prefix
  ARGV[2] job id
  ARGV[3] lock token
  ARGV[4] now (epoch ms)
  ARGV[5] one child's job key to wait for, or "" for any pending child
  Output: 0 moved, 1 nothing pending (not moved), -1 no such job, -9 a child failed the
          job (fail_parent_on_failure), or releaseActiveJob's -2, -3, -6.
  Events: waiting-children.
]]
local rcall = redis.call
-- @include "releaseActiveJob"
-- @include "emitEvent"

local activeKey, waitingChildrenKey, stalledKey = KEYS[1], KEYS[2], KEYS[3]
local jobId, token, child = ARGV[2], ARGV[3], ARGV[5]
local jobKey = ARGV[1] .. jobId
if rcall("EXISTS", jobKey) == 0 then
  return -1
end
if rcall("ZCARD", jobKey .. ":unsuccessful") ~= 0 then
  return -9
end
local pending
if child ~= "" then
  pending = rcall("SISMEMBER", jobKey .. ":dependencies", child) == 1
else
  pending = rcall("SCARD", jobKey .. ":dependencies") > 0
end
if not pending then
  return 1
end
local lockError = releaseActiveJob(activeKey, stalledKey, jobKey, jobId, token)
if lockError < 0 then
  return lockError
end
rcall("ZADD", waitingChildrenKey, ARGV[4], jobId)
emitEvent(KEYS[5], KEYS[4], "waiting-children", "jobId", jobId, "prev", "active")
return 0
