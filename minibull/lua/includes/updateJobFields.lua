--[[
  Sets the fields of a JSON object (field -> string) on a job hash.
]]
local function updateJobFields(jobKey, fieldsJson)
  if fieldsJson == "{}" then
    return
  end
  local fields = cjson.decode(fieldsJson)
  for field, value in pairs(fields) do
    rcall("HSET", jobKey, field, value)
  end
end
