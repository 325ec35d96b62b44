--[[
  A hash's fields (a flat field/value array, as HGETALL gives) as one JSON
  object of strings. Built by hand rather than with cjson: one string is far
  cheaper for a client to read than an array of fields, and this is cheaper
  than cjson.encode on the embedded server.
]]
local jsonEscapes = {['"'] = '\\"', ['\\'] = '\\\\'}
local function jsonEscape(char)
  return jsonEscapes[char] or string.format("\\u%04x", string.byte(char))
end

local function jsonOfHash(flat)
  local parts = {}
  for i = 1, #flat, 2 do
    parts[#parts + 1] = '"' .. (string.gsub(flat[i], '[%c"\\]', jsonEscape)) .. '":"'
                        .. (string.gsub(flat[i + 1], '[%c"\\]', jsonEscape)) .. '"'
  end
  return "{" .. table.concat(parts, ",") .. "}"
end
