--[[
  Releases a worker's lock on a job. Returns 0, or -2 when the lock is gone
  (it expired: the job may already belong to another worker), or -6 when
  another worker holds it.
]]
local function removeLock(jobKey, stalledKey, token, jobId)
  local lockKey = jobKey .. ":lock"
  local holder = rcall("GET", lockKey)
  if holder == token then
    rcall("DEL", lockKey)
    rcall("SREM", stalledKey, jobId)
    return 0
  end
  if holder then
    return -6
  end
  return -2
end
