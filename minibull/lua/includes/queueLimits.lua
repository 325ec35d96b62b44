--[[
  What holds back every worker of a queue, besides a pause: its rate limit and its
  global concurrency cap. Shared by takeNextJob (may a job start?) and hasReadyWork
  (a virtual clock's question: could one?). meta: readQueueMeta's answer.
  rateLimitOf: the limit in force, jobs per window (nil: none): the queue's
    ("max", "duration" in meta), else the worker's (limitMax 0: none).
  rateLimitReached: the limiter's PTTL if its count has reached the limit, else nil.
    A manual limit (Worker.rate_limit) holds every worker, also one without a limit.
  concurrencyCapped: true when "concurrency" (jobs active at once, for all workers) is reached.
]]
-- What Worker.rate_limit writes into the limiter key (Number.MAX_SAFE_INTEGER, as BullMQ).
local MANUAL_RATE_LIMIT = 9007199254740991

local function rateLimitOf(meta, limitMax, limitWindow)
  local maxJobs, window = tonumber(meta[3]), tonumber(meta[4])
  if not maxJobs and limitMax > 0 then
    return limitMax, limitWindow
  end
  return maxJobs, window
end

local function rateLimitReached(limiterKey, maxJobs)
  if (tonumber(rcall("GET", limiterKey)) or 0) >= (maxJobs or MANUAL_RATE_LIMIT) then
    return rcall("PTTL", limiterKey)
  end
  return nil
end

local function concurrencyCapped(meta, activeKey)
  local concurrency = tonumber(meta[2])
  return concurrency ~= nil and rcall("LLEN", activeKey) >= concurrency
end
