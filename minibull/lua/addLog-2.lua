--[[
  Appends a line to a job's log, keeping the newest lines only if asked.

  KEYS[1] job   KEYS[2] logs (the job's logs)
  ARGV[1] the line
  ARGV[2] lines to keep (0: all)
  Output: the number of lines, or -1 no such job.
]]
local rcall = redis.call
if rcall("EXISTS", KEYS[1]) == 0 then
  return -1
end
local count = rcall("RPUSH", KEYS[2], ARGV[1])
local keep = tonumber(ARGV[2])
if keep > 0 and count > keep then
  rcall("LTRIM", KEYS[2], -keep, -1)
  count = keep
end
return count
