--[[
  The heart of moveToActive, shared with moveToFinished (which fetches the next
  job in the same call, as BullMQ's Node worker does): promote due delayed
  jobs, honour the queue's pause, global concurrency and rate limits, then move
  the next job to "active" and lock it. An id whose hash is gone (deleted by
  hand, evicted under allkeys-lru) is dropped from "active" and the next one
  taken: a worker never gets a job with no data (minibull's own guard).

  k: {wait, active, prioritized, delayed, pc, marker, meta, events, limiter}
  take: {token, lockMs, worker, limitMax, limitWindow} (limitMax 0: no worker limit),
        and wakeOthers: true to set the marker when more jobs wait, so that another
        idle worker wakes up (moveToActive: a worker that was idle passes the wake-up
        on; a worker fetching its next job as it finishes one need not, since every
        worker that went idle did so on an empty queue, and an add sets the marker)
  meta: readQueueMeta's answer, if the caller read it already (else nil).
  Returns {the JSON text [job id, fields], job id} when a job was taken (fields: its hash
  as a flat array, field, value, ...; the scripts answer with the text alone: one read
  for the client, speed only), else
  {0, 0, next delayed due ms (0: none), ms until the rate limit allows one}.
]]
-- @include "promoteDelayedJobs"
-- @include "addDelayMarker"
-- @include "emitEvent"
-- @include "readQueueMeta"
-- @include "queueLimits"

-- The job's hash as HGETALL gave it (flat), with processedOn, pb and ats set (one HSET).
local function startJob(jobKey, flat, now, worker)
  local set = {processedOn = now, pb = worker, ats = 1}
  for i = 1, #flat, 2 do
    if flat[i] == "ats" then
      set.ats = (tonumber(flat[i + 1]) or 0) + 1
    end
  end
  local found = {}
  for i = 1, #flat, 2 do
    local value = set[flat[i]]
    if value ~= nil then
      flat[i + 1] = tostring(value)
      found[flat[i]] = true
    end
  end
  for field, value in pairs(set) do
    if not found[field] then
      flat[#flat + 1] = field
      flat[#flat + 1] = tostring(value)
    end
  end
  rcall("HSET", jobKey, "processedOn", now, "pb", worker, "ats", set.ats)
  return flat
end

-- The next ready id, moved to "active": wait's right end, else the best prioritized job.
local function popNextJob(k)
  local jobId = rcall("RPOPLPUSH", k.wait, k.active)
  if jobId then
    return jobId
  end
  local best = rcall("ZPOPMIN", k.prioritized)
  if not best[1] then
    return nil
  end
  rcall("LPUSH", k.active, best[1])
  if rcall("ZCARD", k.prioritized) == 0 then
    rcall("DEL", k.pc)
  end
  return best[1]
end

local function takeNextJob(k, prefix, now, take, meta)
  meta = meta or readQueueMeta(k.meta)
  local paused = meta[1] ~= false
  local maxJobs, window = rateLimitOf(meta, take.limitMax, take.limitWindow)
  promoteDelayedJobs(k.delayed, k.wait, k.prioritized, k.pc, k.marker, k.meta, k.events,
                     prefix, now, paused)
  -- A manual rate limit (Worker.rate_limit, BullMQ's rateLimit) sets the counter to
  -- 2^53 - 1: it holds every worker, also one without a limit of its own (BullMQ's
  -- workers need a limiter to see it).
  local ttl = rateLimitReached(k.limiter, maxJobs)
  if ttl and ttl > 0 then
    return {0, 0, 0, ttl}
  elseif ttl then  -- reached, but with no expiry: a stale count
    rcall("DEL", k.limiter)
  end
  if paused or concurrencyCapped(meta, k.active) then
    return {0, 0, 0, 0}
  end

  local jobId, flat
  repeat
    jobId = popNextJob(k)
    if not jobId then
      return {0, 0, nextDelayedTimestamp(k.delayed), 0}
    end
    flat = rcall("HGETALL", prefix .. jobId)
    if #flat == 0 then
      rcall("LREM", k.active, 1, jobId)
    end
  until #flat > 0
  if maxJobs and rcall("INCR", k.limiter) == 1 then
    rcall("PEXPIRE", k.limiter, window)
  end

  local jobKey = prefix .. jobId
  rcall("SET", jobKey .. ":lock", take.token, "PX", take.lockMs)
  local job = startJob(jobKey, flat, now, take.worker)
  emitEvent(k.events, k.meta, "active", "jobId", jobId, "prev", "waiting", "ts", now,
            "worker", take.worker)
  -- More work left: wake another idle worker.
  if take.wakeOthers and (rcall("LLEN", k.wait) > 0 or rcall("ZCARD", k.prioritized) > 0) then
    rcall("ZADD", k.marker, 0, "0")
  end
  -- Speed only: one JSON text, far cheaper for a client to read than an array of fields.
  return {cjson.encode({jobId, job}), jobId}
end
