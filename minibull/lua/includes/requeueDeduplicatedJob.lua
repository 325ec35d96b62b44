--[[
  When a job ends (completed, or failed for good), adds the job that an add with
  keepLastIfActive left in "dn:<id>" while it ran (BullMQ's
  includes/requeueDeduplicatedJob.lua): with that add's id ("jid"; the id counter
  is taken as well, as BullMQ; its value is the id if a job has taken "jid" since), its name, data and options, delayed, prioritized or
  waiting as they say; it then holds "de:<id>". ready: the queue keys of moveToFinished.
  Events: added, then waiting or delayed.
]]
-- @include "emitEvent"
-- @include "addJobToWait"
-- @include "addBaseMarker"
-- @include "addDelayMarker"
-- @include "getDelayedScore"
-- @include "isQueuePaused"

local function requeueDeduplicatedJob(prefix, dedupPrefix, dedupId, ready, now)
  if not dedupId then
    return
  end
  local nextKey = prefix .. "dn:" .. dedupId
  local stored = rcall("HMGET", nextKey, "name", "data", "opts", "jid")
  if not stored[3] then
    return
  end
  local counter = tostring(rcall("INCR", prefix .. "id"))
  -- minibull's own guard (BullMQ has none): if a job took the kept add's id meanwhile (a
  -- custom id), the counter's id, rather than a second job under one hash.
  local jobId = stored[4]
  if not jobId or rcall("EXISTS", prefix .. jobId) == 1 then
    jobId = counter
  end
  local opts = cjson.decode(stored[3])
  local de = opts["de"]
  local dedupKey = dedupPrefix .. dedupId
  local ttl = type(de) == "table" and tonumber(de["ttl"]) or 0
  if type(de) == "table" and de["keepLastIfActive"] then
    rcall("SET", dedupKey, jobId)
  elseif ttl > 0 then
    rcall("SET", dedupKey, jobId, "PX", ttl)
  else
    rcall("SET", dedupKey, jobId)
  end
  local delay = tonumber(opts["delay"]) or 0
  local priority = tonumber(opts["priority"]) or 0
  rcall("HSET", prefix .. jobId, "name", stored[1], "data", stored[2], "opts", stored[3],
        "timestamp", now, "delay", delay, "priority", priority, "deid", dedupId)
  emitEvent(ready.events, ready.meta, "added", "jobId", jobId, "name", stored[1])
  if delay > 0 then
    local score, due = getDelayedScore(ready.delayed, now, delay)
    rcall("ZADD", ready.delayed, score, jobId)
    emitEvent(ready.events, ready.meta, "delayed", "jobId", jobId, "delay", due)
    addDelayMarker(ready.marker, ready.delayed)
  else
    addJobToWait(ready.wait, ready.prioritized, ready.pc, jobId, priority,
                 opts["lifo"] and "RPUSH" or "LPUSH")
    addBaseMarker(ready.marker, isQueuePaused(ready.meta))
    emitEvent(ready.events, ready.meta, "waiting", "jobId", jobId)
  end
  rcall("DEL", nextKey)
end
