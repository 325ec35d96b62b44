--[[
  Job fields sent as a JSON object (field -> string). decodeJobFields runs first,
  before the script writes anything, so that a value cjson refuses (a lone
  surrogate escape such as "\ud800") stops the script with nothing changed; then
  setJobFields writes them.
]]
local function decodeJobFields(fieldsJson)
  if fieldsJson == "{}" then
    return {}
  end
  return cjson.decode(fieldsJson)
end

local function setJobFields(jobKey, fields)
  for field, value in pairs(fields) do
    rcall("HSET", jobKey, field, value)
  end
end
