--[[
  Deletes a job's hash, lock and logs.
]]
local function removeJobKeys(jobKey)
  rcall("DEL", jobKey, jobKey .. ":lock", jobKey .. ":logs")
end
