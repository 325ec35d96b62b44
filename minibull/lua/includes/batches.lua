--[[
  Splits positions 1..n into ranges of at most `size`: for from, to in batches(n, 7000) do
  rcall("ZREM", key, unpack(ids, from, to)) end. Lua's unpack fails above about 8,000
  values (LUAI_MAXCSTACK), so every unpack of a table that can grow goes through this
  (BullMQ's includes/batches.lua, also 7000).
]]
local UNPACK_BATCH = 7000
local function batches(n, size)
  local from = 1
  return function()
    if from > n then
      return nil
    end
    local first, last = from, math.min(n, from + size - 1)
    from = last + 1
    return first, last
  end
end
