--[[
  Makes a job ready to run: LPUSH (or RPUSH for lifo) to "wait" when it has no
  priority, else into "prioritized" with score priority * 2^32 + counter, so
  equal priorities run first-in first-out.
]]
local function addJobToWait(waitKey, prioritizedKey, pcKey, jobId, priority, pushCmd)
  if priority > 0 then
    local counter = rcall("INCR", pcKey) % 0x100000000
    rcall("ZADD", prioritizedKey, priority * 0x100000000 + counter, jobId)
  else
    rcall(pushCmd, waitKey, jobId)
  end
end
