--[[
  Removes every job waiting to run (and, if asked, every delayed job).
  Running and finished jobs stay.

  KEYS[1] wait   KEYS[2] prioritized   KEYS[3] pc   KEYS[4] delayed
  ARGV[1] job key prefix
  ARGV[2] "1" to remove delayed jobs too
  ARGV[3] deduplication key prefix ("bull:<queue>:de:"): their ids are freed
  Output: the number of jobs removed.
]]
local rcall = redis.call
-- @include "removeJobKeys"
-- @include "removeDeduplicationKey"

local removed = 0
local function removeAll(jobIds)
  for _, jobId in ipairs(jobIds) do
    removeDeduplicationKey(ARGV[3], ARGV[1] .. jobId, jobId)
    removeJobKeys(ARGV[1] .. jobId)
  end
  removed = removed + #jobIds
end
removeAll(rcall("LRANGE", KEYS[1], 0, -1))
removeAll(rcall("ZRANGE", KEYS[2], 0, -1))
rcall("DEL", KEYS[1], KEYS[2], KEYS[3])
if ARGV[2] == "1" then
  removeAll(rcall("ZRANGE", KEYS[4], 0, -1))
  rcall("DEL", KEYS[4])
end
return removed
