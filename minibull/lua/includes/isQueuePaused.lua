--[[
  True when the queue is paused (meta hash field "paused").
]]
local function isQueuePaused(metaKey)
  return rcall("HEXISTS", metaKey, "paused") == 1
end
