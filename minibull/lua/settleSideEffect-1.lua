--[[
  After a side effect: records that it happened, with its result (kept for
  ARGV[4] ms), or, if it failed, drops the claim so a later run can try again.
  Only the run holding the claim may settle it.

  KEYS[1] record: the side effect's record
  ARGV[1] this run's token
  ARGV[2] "done" or "failed"
  ARGV[3] the result as JSON text (for "done")
  ARGV[4] how long to remember it (ms)
  Output: 1, or 0 when the claim was lost (its lease ran out).
]]
local rcall = redis.call
local record = rcall("GET", KEYS[1])
if not record or cjson.decode(record)["token"] ~= ARGV[1] then
  return 0
end
if ARGV[2] == "done" then
  rcall("SET", KEYS[1], cjson.encode({done = true, result = ARGV[3]}), "PX", ARGV[4])
else
  rcall("DEL", KEYS[1])
end
return 1
