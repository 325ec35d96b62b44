--[[
  Deletes a whole queue: every job and every queue key. Refuses while jobs
  are running, unless forced.

  KEYS[1] active   KEYS[2] meta
  ARGV[1] job key prefix
  ARGV[2] "1" to obliterate even with running jobs
  ARGV[3] JSON array of the lists that hold job ids
  ARGV[4] JSON array of the sorted sets that hold job ids
  ARGV[5] JSON array of every queue-level key to delete
  Output: 0, or -2 jobs are running (not forced).
]]
local rcall = redis.call
-- @include "removeJobKeys"

if ARGV[2] ~= "1" and rcall("LLEN", KEYS[1]) > 0 then
  return -2
end
local function removeAll(jobIds)
  for _, jobId in ipairs(jobIds) do
    removeJobKeys(ARGV[1] .. jobId)
  end
end
for _, key in ipairs(cjson.decode(ARGV[3])) do
  removeAll(rcall("LRANGE", key, 0, -1))
end
for _, key in ipairs(cjson.decode(ARGV[4])) do
  removeAll(rcall("ZRANGE", key, 0, -1))
end
for _, key in ipairs(cjson.decode(ARGV[5])) do
  rcall("DEL", key)
end
return 0
