--[[
  Job fields sent as a JSON object (field -> string). decodeJobFields runs first,
  before the script writes anything, so that a value cjson refuses (a lone
  surrogate escape such as "\ud800") stops the script with nothing changed; then
  setJobFields writes them, in one HSET.
]]
local function decodeJobFields(fieldsJson)
  if fieldsJson == "{}" then
    return {}
  end
  return cjson.decode(fieldsJson)
end

local function setJobFields(jobKey, fields)
  local flat = {}
  for field, value in pairs(fields) do
    flat[#flat + 1] = field
    flat[#flat + 1] = value
  end
  if #flat > 0 then
    rcall("HSET", jobKey, unpack(flat))
  end
end
