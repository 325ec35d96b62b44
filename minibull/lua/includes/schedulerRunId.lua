--[[
  BullMQ's id of one run of a job scheduler: "repeat:<scheduler id>:<millis>".
]]
local function schedulerRunId(schedulerId, millis)
  return "repeat:" .. schedulerId .. ":" .. string.format("%.0f", millis)
end
