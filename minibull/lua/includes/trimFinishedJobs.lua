--[[
  Keeps a finished set (completed or failed) within its limits: removes jobs
  older than keep.age seconds, then all but the newest keep.count jobs.
]]
-- @include "removeJobKeys"
local function removeFinishedJobs(setKey, prefix, jobIds)
  for _, jobId in ipairs(jobIds) do
    removeJobKeys(prefix .. jobId)
  end
  if #jobIds > 0 then
    rcall("ZREM", setKey, unpack(jobIds))
  end
end

local function trimFinishedJobs(setKey, prefix, keep, now)
  if keep["age"] then
    local oldest = now - keep["age"] * 1000
    removeFinishedJobs(setKey, prefix, rcall("ZRANGEBYSCORE", setKey, 0, oldest, "LIMIT", 0, 1000))
  end
  if keep["count"] and keep["count"] > 0 then
    removeFinishedJobs(setKey, prefix, rcall("ZREVRANGE", setKey, keep["count"], -1))
  end
end
