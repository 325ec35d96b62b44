--[[
  First step of deleting a whole queue: refuses while jobs are running (unless
  forced), else pauses the queue so no worker takes a job while the client
  deletes every key of the queue.

  KEYS[1] active   KEYS[2] meta
  ARGV[1] "1" to obliterate even with running jobs
  Output: 0, or -2 jobs are running (not forced).
]]
local rcall = redis.call
if ARGV[1] ~= "1" and rcall("LLEN", KEYS[1]) > 0 then
  return -2
end
rcall("HSET", KEYS[2], "paused", 1)
return 0
