--[[
  While a side effect runs (minibull.idempotency.once): pushes the end of its
  claim's lease further, as extendLock does for a job's lock in BullMQ
  (extendLock-2.lua: only the holder's token may extend it).

  KEYS[1] record: the side effect's record ("bull:<queue>:idem:<key>")
  ARGV[1] this run's token
  ARGV[2] lease (ms), counted from now
  Output: 1, or 0 when the claim is no longer this run's (it expired, or the
          side effect was recorded as done).
]]
local rcall = redis.call
local record = rcall("GET", KEYS[1])
if not record then
  return 0
end
local ok, state = pcall(cjson.decode, record)
if not ok or type(state) ~= "table" or state["done"] or state["token"] ~= ARGV[1] then
  return 0
end
rcall("PEXPIRE", KEYS[1], ARGV[2])
return 1
