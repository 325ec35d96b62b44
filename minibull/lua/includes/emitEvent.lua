--[[
  Appends an event to the queue's events stream, trimmed to about
  meta's "opts.maxLenEvents" entries (BullMQ's default: 10000). The limit is
  read once per script run.
]]
local maxEventsOfThisRun
local function emitEvent(eventsKey, metaKey, ...)
  if not maxEventsOfThisRun then
    maxEventsOfThisRun = tonumber(rcall("HGET", metaKey, "opts.maxLenEvents")) or 10000
  end
  rcall("XADD", eventsKey, "MAXLEN", "~", maxEventsOfThisRun, "*", "event", ...)
end
