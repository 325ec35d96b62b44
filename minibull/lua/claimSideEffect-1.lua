--[[
  Before a side effect that must happen once (minibull.idempotency.once):
  returns how it stands, and claims it for this run if nobody has.

  KEYS[1] record: the side effect's record ("bull:<queue>:idem:<key>")
  ARGV[1] this run's token
  ARGV[2] lease (ms): how long the claim holds if this run dies
  Output: {"done", result as JSON text} when it happened already,
          {"claimed"} when this run must do it,
          {"busy"} when another run holds the claim.
]]
local rcall = redis.call
local record = rcall("GET", KEYS[1])
if record then
  local state = cjson.decode(record)
  if state["done"] then
    return {"done", state["result"]}
  end
  return {"busy"}
end
rcall("SET", KEYS[1], cjson.encode({token = ARGV[1]}), "PX", ARGV[2])
return {"claimed"}
