--[[
  Ends a job's run: releases its lock, moves it from "active" to "completed" or
  "failed" (or deletes it, per removeOnComplete/removeOnFail) and stores the
  return value or the failure reason. Checks first, then writes: a refused call,
  or fields cjson cannot decode, change nothing.

  KEYS[1] wait     KEYS[2] active   KEYS[3] prioritized   KEYS[4] delayed
  KEYS[5] pc       KEYS[6] marker   KEYS[7] meta          KEYS[8] events
  KEYS[9] stalled  KEYS[10] finished (completed or failed)   KEYS[11] limiter
  ARGV[1] job key prefix
  ARGV[2] now (epoch ms)
  ARGV[3] job id
  ARGV[4] lock token
  ARGV[5] "completed" or "failed"
  ARGV[6] field: "returnvalue" or "failedReason"
  ARGV[7] its value (the return value as JSON text, or the reason)
  ARGV[8] jobs to keep, "<count>" or "<count>:<age in s>" (count -1: all, 0: none)
  ARGV[9] the job's attempts (for retries-exhausted)
  ARGV[10] JSON object of more job fields to set (e.g. stacktrace)
  ARGV[11] deduplication key prefix ("bull:<queue>:de:")
  ARGV[12] "1" to fetch the next job in the same call (as moveToActive), else "0"
  ARGV[13..17] for that: lock token, lock duration (ms), worker id, the worker's
           rate limit (jobs per window, 0: none) and window (ms)
  ARGV[18] metrics: per-minute points to keep (Worker metrics=), "" or absent: none
  Output: when it fetched the next job, moveToActive's answer for it (the JSON text
          [job id, fields], fields its hash as a flat array: field, value, ...);
          else {0, 0, 0, next delayed due, ms limited} (all 0 when not fetching), or
          {-1} no such job (its id still leaves "active", see releaseActiveJob),
          {-2} lock missing, {-3} not active, {-6} lock held by another worker,
          {-4} a parent completing with children pending, {-9} with a child that failed
          it (fail_parent_on_failure); both checked before anything is written.
  A re-run of a call that succeeded (its reply was lost: redis-py re-sends it, or the
  worker retries it) answers the same: {0, the job it fetched if that job is still locked
  by the fetch token it used (the lock moves to this call's fetch token), else no job}.
  Job fields: sets "mbf" (minibull's own) to [token], or [token, fetch token, next job id]
  when it fetched one, with the fields it writes anyway (see releaseActiveJob's endedBy).
  Events: completed or failed (with "ts", the clock's now), retries-exhausted, drained;
  before them added and waiting/delayed for a job kept by keepLastIfActive ("dn:<id>").
  Metrics: with ARGV[18], the finish is counted in metrics:<target> (includes/collectMetrics).
  Flows: a child's end reaches its parent (includes/flowParent): a return value goes
  into the parent's ":processed", a failure follows the child's policy; the parent moves
  on when it was the last pending child.
]]
local rcall = redis.call
-- @include "releaseActiveJob"
-- @include "jobFields"
-- @include "trimFinishedJobs"
-- @include "emitEvent"
-- @include "removeDeduplicationKey"
-- @include "requeueDeduplicatedJob"
-- @include "readQueueMeta"
-- @include "takeNextJob"
-- @include "collectMetrics"
-- @include "flowParent"

-- After a job ends: "drained" when nothing is left; and if the queue has a global
-- concurrency, the slot just freed may let a waiting job start: wake a worker.
local function wakeOrDrain(waitKey, activeKey, prioritizedKey, metaKey, eventsKey, markerKey)
  local ready = rcall("LLEN", waitKey) + rcall("ZCARD", prioritizedKey)
  if ready == 0 and rcall("LLEN", activeKey) == 0 then
    emitEvent(eventsKey, metaKey, "drained")
  end
  if ready > 0 and rcall("HEXISTS", metaKey, "concurrency") == 1
      and rcall("HEXISTS", metaKey, "paused") == 0 then
    rcall("ZADD", markerKey, 0, "0")
  end
end

local function readyKeys()
  return {wait = KEYS[1], active = KEYS[2], prioritized = KEYS[3], delayed = KEYS[4],
          pc = KEYS[5], marker = KEYS[6], meta = KEYS[7], events = KEYS[8], limiter = KEYS[11]}
end

local waitKey, activeKey, prioritizedKey = KEYS[1], KEYS[2], KEYS[3]
local metaKey, eventsKey, stalledKey, finishedKey = KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local prefix, now, jobId, token = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local target, field, value = ARGV[5], ARGV[6], ARGV[7]
local jobKey = prefix .. jobId
local fields = decodeJobFields(ARGV[10])
local keepCount, keepAge = string.match(ARGV[8], "^(-?%d+):?(%d*)$")
local keep = {count = tonumber(keepCount), age = tonumber(keepAge)}
local attempts = tonumber(ARGV[9]) or 1

-- A re-run's answer (see the header): the job the first run fetched, if its lock still
-- holds that run's fetch token, moved to this call's (nobody else can know a token whose
-- reply was lost); else no job. Nothing else changes: the job ended once.
local function answerAgain(record)
  local nextId, lostToken = record[3], record[2]
  if ARGV[12] ~= "1" or type(nextId) ~= "string" then
    return {0, 0, 0, 0, 0}
  end
  local nextKey = prefix .. nextId
  if rcall("GET", nextKey .. ":lock") ~= lostToken then
    return {0, 0, 0, 0, 0}
  end
  local flat = rcall("HGETALL", nextKey)
  if #flat == 0 then
    return {0, 0, 0, 0, 0}
  end
  rcall("SET", nextKey .. ":lock", ARGV[13], "PX", ARGV[14])
  rcall("HSET", jobKey, "mbf", cjson.encode({token, ARGV[13], nextId}))
  return cjson.encode({nextId, flat})
end

local job = rcall("HMGET", jobKey, "timestamp", "atm", "deid", "mbf", "parentKey", "parent")
if not job[1] then  -- every job hash has a timestamp
  dropMissingJob(activeKey, stalledKey, jobKey, jobId, token)
  return {-1}
end
-- A parent completes only once no child is pending and none failed it (BullMQ's -4, -9),
-- checked before the lock is touched: the worker then fails the job instead.
if target == "completed" then
  if rcall("SCARD", jobKey .. ":dependencies") ~= 0 then
    return {-4}
  end
  if rcall("ZCARD", jobKey .. ":unsuccessful") ~= 0 then
    return {-9}
  end
end
local lockError = releaseActiveJob(activeKey, stalledKey, jobKey, jobId, token)
local ended = lockError == -2 and endedBy(job[4], token)
if ended then
  return answerAgain(ended)
end
if lockError < 0 then
  return {lockError}
end
setJobFields(jobKey, fields)
removeDeduplicationKeyOf(ARGV[11], job[3], jobId)
requeueDeduplicatedJob(prefix, ARGV[11], job[3], readyKeys(), now)  -- keepLastIfActive
local attemptsMade = (tonumber(job[2]) or 0) + 1
-- Fetching the next job reads the queue's meta: read it now, and the events limit with it.
local meta = ARGV[12] == "1" and readQueueMeta(metaKey) or nil
emitEvent(eventsKey, metaKey, target, "jobId", jobId, field, value, "prev", "active", "ts", now)
if target == "failed" and attemptsMade >= attempts then
  emitEvent(eventsKey, metaKey, "retries-exhausted", "jobId", jobId, "attemptsMade", attemptsMade)
end
collectFinishMetrics(prefix, target, ARGV[18], now)
if job[5] then  -- a child of a flow: its parent hears of it
  if target == "completed" then
    childCompleted(jobKey, job[5], job[6], value, now)
  else
    childFailed(jobKey, job[5], job[6], value, now)
  end
end
-- The next job is taken before the job's own HSET, so that the record of this call
-- (mbf) names it in that same HSET.
local nextJob = {0, 0, 0, 0}  -- takeNextJob's answer
if ARGV[12] == "1" then
  nextJob = takeNextJob(readyKeys(), prefix, now, {token = ARGV[13], lockMs = ARGV[14],
                        worker = ARGV[15], limitMax = tonumber(ARGV[16]),
                        limitWindow = tonumber(ARGV[17])}, meta)
end
if keep["count"] ~= 0 then
  local record = nextJob[2] ~= 0 and {token, ARGV[13], nextJob[2]} or {token}
  rcall("ZADD", finishedKey, now, jobId)
  rcall("HSET", jobKey, field, value, "finishedOn", now, "atm", attemptsMade,
        "mbf", cjson.encode(record))
  if target == "failed" then
    rcall("HDEL", jobKey, "defa")
  end
  -- No deduplication prefix: the id was freed above, a TTL key outlives its job (BullMQ).
  trimFinishedJobs(finishedKey, prefix, keep, now, nil, stalledKey)
else
  removeJob(prefix, jobId, nil, stalledKey)
end
if nextJob[2] ~= 0 then  -- took the next job, so the queue is not drained
  return nextJob[1]
end
wakeOrDrain(waitKey, activeKey, prioritizedKey, metaKey, eventsKey, KEYS[6])
return {0, 0, 0, nextJob[3], nextJob[4]}
