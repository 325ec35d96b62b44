--[[
  Appends an event to the queue's events stream, trimmed to about
  meta's "opts.maxLenEvents" entries (BullMQ's default: 10000).
]]
local function emitEvent(eventsKey, metaKey, ...)
  local maxEvents = tonumber(rcall("HGET", metaKey, "opts.maxLenEvents")) or 10000
  rcall("XADD", eventsKey, "MAXLEN", "~", maxEvents, "*", "event", ...)
end
