--[[
  Adds one or more jobs (BullMQ's addStandardJob, addPrioritizedJob and
  addDelayedJob in one script, so that add_bulk is a single round trip).

  KEYS[1] wait         KEYS[2] prioritized   KEYS[3] delayed   KEYS[4] pc
  KEYS[5] marker       KEYS[6] meta          KEYS[7] id        KEYS[8] events
  ARGV[1] job key prefix ("bull:<queue>:")
  ARGV[2] now (epoch ms)
  ARGV[3] JSON array of jobs: {id ("" for a new numeric id), name, data (JSON
          text), opts (JSON text), delay (ms), priority, lifo, and optionally
          dedupId and dedupTtl (ms, 0: until the job ends), or for the modes
          (extend, replace, keepLastIfActive) "de", the job's "de" option instead}
  ARGV[4] deduplication key prefix ("bull:<queue>:de:")
  ARGV[5] the reserved job ids (keys.RESERVED_JOB_IDS), separated by spaces
  Output: for each job, its id and 1 if added, 0 if an existing job stands in
          (same job id, or same deduplication id);
          or {-100, the id} when a job id is reserved, and nothing is written.
  Events: added, then waiting or delayed; duplicated or deduplicated instead.
]]
local rcall = redis.call
-- @include "readQueueMeta"
-- @include "addJobToWait"
-- @include "addBaseMarker"
-- @include "addDelayMarker"
-- @include "getDelayedScore"
-- @include "emitEvent"
-- @include "deduplicateJob"

local waitKey, prioritizedKey, delayedKey, pcKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local markerKey, metaKey, idKey, eventsKey = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local prefix, dedupPrefix = ARGV[1], ARGV[4]
local now = tonumber(ARGV[2])
local jobs = cjson.decode(ARGV[3])

-- A job's hash is prefix .. id, so an id such as "wait" would overwrite a queue key. minibull's
-- own guard (BullMQ has none): every job is checked before anything is written. Only custom
-- ids need it: one without a space is looked up as " id " in " <reserved ids> " (speed only:
-- a plain find, where a table of the ids built on every call cost more than all the writes
-- of an add; an id with a space names no reserved key).
local reservedIds = " " .. ARGV[5] .. " "
for _, job in ipairs(jobs) do
  local jobId = job["id"]
  if jobId ~= "" and not string.find(jobId, " ", 1, true)
     and string.find(reservedIds, " " .. jobId .. " ", 1, true) then
    return {-100, jobId}
  end
end

local paused = readQueueMeta(metaKey)[1] ~= false  -- one read, with the events limit
-- The markers are set once, after all the jobs (one ZADD for a bulk of any size).
local addedReady, addedDelayed = false, false

-- Returns the job's id and whether it was added (false: an existing job stands in).
local function addJob(job)
  local jobId = job["id"]
  if jobId ~= "" and rcall("EXISTS", prefix .. jobId) == 1 then
    emitEvent(eventsKey, metaKey, "duplicated", "jobId", jobId)
    return jobId, 0
  end
  local dedupId = job["dedupId"]
  if dedupId then
    local existing = rcall("GET", dedupPrefix .. dedupId)
    if existing then
      -- As BullMQ: the add that was ignored still takes an id, named in the event.
      local ignoredId = jobId ~= "" and jobId or tostring(rcall("INCR", idKey))
      emitEvent(eventsKey, metaKey, "deduplicated", "jobId", existing, "deduplicationId", dedupId,
                "deduplicatedJobId", ignoredId)
      return existing, 0
    end
  end
  local counter = rcall("INCR", idKey)
  if jobId == "" then
    jobId = tostring(counter)
  end
  if job["de"] then  -- the modes, once the add has its id (as BullMQ's addStandardJob)
    local standing = deduplicateJob(job["de"], jobId, job, prefix, dedupPrefix, delayedKey,
                                    eventsKey, metaKey)
    if standing then
      return standing, 0
    end
    dedupId = job["de"]["id"]
  end
  local jobKey = prefix .. jobId
  local delay = tonumber(job["delay"])
  local priority = tonumber(job["priority"])
  rcall("HSET", jobKey, "name", job["name"], "data", job["data"], "opts", job["opts"],
        "timestamp", now, "delay", delay, "priority", priority)
  if dedupId then
    rcall("HSET", jobKey, "deid", dedupId)
    if job["de"] then  -- deduplicateJob has set it
    elseif tonumber(job["dedupTtl"]) > 0 then
      rcall("SET", dedupPrefix .. dedupId, jobId, "PX", job["dedupTtl"])
    else
      rcall("SET", dedupPrefix .. dedupId, jobId)
    end
  end
  emitEvent(eventsKey, metaKey, "added", "jobId", jobId, "name", job["name"])
  if delay > 0 then
    local score, due = getDelayedScore(delayedKey, now, delay)
    rcall("ZADD", delayedKey, score, jobId)
    emitEvent(eventsKey, metaKey, "delayed", "jobId", jobId, "delay", due)
    addedDelayed = true
  else
    local pushCmd = "LPUSH"
    if job["lifo"] then
      pushCmd = "RPUSH"
    end
    addJobToWait(waitKey, prioritizedKey, pcKey, jobId, priority, pushCmd)
    addedReady = true
    emitEvent(eventsKey, metaKey, "waiting", "jobId", jobId)
  end
  return jobId, 1
end

local results = {}
for _, job in ipairs(jobs) do
  local jobId, added = addJob(job)
  table.insert(results, jobId)
  table.insert(results, added)
end
if addedReady then
  addBaseMarker(markerKey, paused)
end
if addedDelayed then
  addDelayMarker(markerKey, delayedKey)
end
return results
