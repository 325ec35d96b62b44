--[[
  Renews the locks a worker holds, so its running jobs are not taken for
  stalled, and takes them off the "stalled" suspects.

  KEYS[1] stalled
  ARGV[1] job key prefix
  ARGV[2] lock duration (ms)
  ARGV[3] JSON array of [job id, token] pairs
  Output: the ids whose lock was lost (expired, or held by another worker).
]]
local rcall = redis.call
local lost = {}
for _, pair in ipairs(cjson.decode(ARGV[3])) do
  local jobId, token = pair[1], pair[2]
  local lockKey = ARGV[1] .. jobId .. ":lock"
  if rcall("GET", lockKey) == token then
    rcall("SET", lockKey, token, "PX", ARGV[2])
    rcall("SREM", KEYS[1], jobId)
  else
    table.insert(lost, jobId)
  end
end
return lost
