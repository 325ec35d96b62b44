--[[
  Job.update_data: replaces a job's data (BullMQ's updateData), in any state.

  KEYS[1] job (the job's hash)
  ARGV[1] the new data as JSON text
  Output: 0, or -1 no such job (nothing is written).
]]
local rcall = redis.call

if rcall("EXISTS", KEYS[1]) == 0 then
  return -1
end
rcall("HSET", KEYS[1], "data", ARGV[1])
return 0
