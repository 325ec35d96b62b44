--[[
  BullMQ's deduplication modes for one add (its includes/deduplicateJob.lua,
  deduplicateJobWithoutReplace.lua, storeDeduplicatedNextJob.lua and
  recoverStaleDeduplicationKey.lua, bullmq 6.7). de is the job's "de" option with at
  least one of extend, replace, keepLastIfActive (the simple mode stays in addJob):
  - extend (with ttl): an add within the ttl is dropped and restarts the ttl;
  - replace: an add while the holder is still delayed removes it ("removed" event)
    and is added in its place (with extend, a debounce: the last add runs);
  - keepLastIfActive: an add while the holder is active is kept in "dn:<id>" (the
    latest wins) and added when the holder ends (includes/requeueDeduplicatedJob);
    the "de:<id>" key then has no ttl.
  jobId is the id the add has (taken already). Returns the id of the job that stands in
  (nothing to add), or nil: add the job ("de:<id>" is set to it here).
  Events: deduplicated (jobId the job kept, deduplicatedJobId the other one).
]]
-- @include "emitEvent"
-- @include "removeJob"

local function setDeduplicationKey(dedupKey, jobId, de)
  local ttl = de["ttl"]
  if ttl and ttl > 0 then
    rcall("SET", dedupKey, jobId, "PX", ttl)
  else
    rcall("SET", dedupKey, jobId)
  end
end

-- keepLastIfActive without a ttl on the key: it must outlive the holder's run.
local function holdDeduplicationKey(dedupKey, jobId, de)
  if de["keepLastIfActive"] then
    rcall("SET", dedupKey, jobId)
  else
    setDeduplicationKey(dedupKey, jobId, de)
  end
end

-- A key without ttl whose job is gone (lost in an outage) holds nothing: the add takes it.
local function recoverStaleDeduplicationKey(dedupKey, nextKey, prefix, holderId, jobId, de)
  if holderId and rcall("PTTL", dedupKey) == -1 and rcall("EXISTS", prefix .. holderId) == 0 then
    rcall("DEL", dedupKey, nextKey)
    holdDeduplicationKey(dedupKey, jobId, de)
    return true
  end
  return false
end

local function isActive(activeKey, jobId)
  local pos = redis.pcall("LPOS", activeKey, jobId)
  if type(pos) == "table" and pos.err then  -- Redis < 6.0.6 has no LPOS
    for _, id in ipairs(rcall("LRANGE", activeKey, 0, -1)) do
      if id == jobId then
        return true
      end
    end
    return false
  end
  return pos ~= false and pos ~= nil
end

-- keepLastIfActive and the holder is running: this add is kept for later (the latest wins).
local function storeDeduplicatedNextJob(de, holderId, prefix, dedupKey, nextKey, job, jobId,
                                        eventsKey, metaKey)
  if not (de["keepLastIfActive"] and holderId and isActive(prefix .. "active", holderId)) then
    return false
  end
  rcall("DEL", nextKey)
  rcall("HSET", nextKey, "name", job["name"], "data", job["data"], "opts", job["opts"],
        "jid", jobId)
  rcall("PERSIST", dedupKey)  -- no expiry while the holder runs
  emitEvent(eventsKey, metaKey, "deduplicated", "jobId", holderId, "deduplicationId", de["id"],
            "deduplicatedJobId", jobId)
  return true
end

local function deduplicateWithoutReplace(de, jobId, job, prefix, dedupKey, nextKey, eventsKey,
                                         metaKey)
  local ttl = de["ttl"]
  local taken
  if ttl and ttl > 0 and de["extend"] then
    local holderId = rcall("GET", dedupKey)
    if not holderId then
      holdDeduplicationKey(dedupKey, jobId, de)
      return nil
    end
    if recoverStaleDeduplicationKey(dedupKey, nextKey, prefix, holderId, jobId, de) then
      return nil
    end
    if storeDeduplicatedNextJob(de, holderId, prefix, dedupKey, nextKey, job, jobId, eventsKey,
                                metaKey) then
      return holderId
    end
    holdDeduplicationKey(dedupKey, holderId, de)  -- the ttl starts again
    emitEvent(eventsKey, metaKey, "deduplicated", "jobId", holderId, "deduplicationId", de["id"],
              "deduplicatedJobId", jobId)
    return holderId
  elseif ttl and ttl > 0 and not de["keepLastIfActive"] then
    taken = not rcall("SET", dedupKey, jobId, "PX", ttl, "NX")
  else
    taken = not rcall("SET", dedupKey, jobId, "NX")
  end
  if not taken then
    return nil
  end
  local holderId = rcall("GET", dedupKey)
  if recoverStaleDeduplicationKey(dedupKey, nextKey, prefix, holderId, jobId, de) then
    return nil
  end
  if not storeDeduplicatedNextJob(de, holderId, prefix, dedupKey, nextKey, job, jobId, eventsKey,
                                  metaKey) then
    emitEvent(eventsKey, metaKey, "deduplicated", "jobId", holderId, "deduplicationId", de["id"],
              "deduplicatedJobId", jobId)
  end
  return holderId
end

local function deduplicateJob(de, jobId, job, prefix, dedupPrefix, delayedKey, eventsKey,
                              metaKey)
  local dedupKey = dedupPrefix .. de["id"]
  local nextKey = prefix .. "dn:" .. de["id"]
  if not de["replace"] then
    return deduplicateWithoutReplace(de, jobId, job, prefix, dedupKey, nextKey, eventsKey,
                                     metaKey)
  end
  local holderId = rcall("GET", dedupKey)
  if not holderId then
    holdDeduplicationKey(dedupKey, jobId, de)
    return nil
  end
  if rcall("ZREM", delayedKey, holderId) > 0 then
    -- The holder has not started: this add takes its place (and any add kept for later
    -- goes, or it would come back when this job ends).
    removeJob(prefix, holderId, nil, nil)  -- its id stays held: this add takes it over
    rcall("DEL", nextKey)
    emitEvent(eventsKey, metaKey, "removed", "jobId", holderId, "prev", "delayed")
    emitEvent(eventsKey, metaKey, "deduplicated", "jobId", jobId, "deduplicationId", de["id"],
              "deduplicatedJobId", holderId)
    local ttl = de["ttl"]
    if not de["keepLastIfActive"] and not de["extend"] and ttl and ttl > 0 then
      rcall("SET", dedupKey, jobId, "KEEPTTL")  -- the window keeps its end
    else
      holdDeduplicationKey(dedupKey, jobId, de)
    end
    return nil
  end
  if recoverStaleDeduplicationKey(dedupKey, nextKey, prefix, holderId, jobId, de) then
    return nil
  end
  -- Waiting or active: too late to replace (as BullMQ, no event unless kept for later).
  storeDeduplicatedNextJob(de, holderId, prefix, dedupKey, nextKey, job, jobId, eventsKey, metaKey)
  return holderId
end
