--[[
  Gives a worker the next job: promotes delayed jobs that are due, then takes
  the oldest job of "wait" (its right end), else the best of "prioritized",
  moves it to "active" and locks it with the worker's token.

  KEYS[1] wait     KEYS[2] active   KEYS[3] prioritized   KEYS[4] delayed
  KEYS[5] pc       KEYS[6] marker   KEYS[7] meta          KEYS[8] events
  KEYS[9] limiter
  ARGV[1] job key prefix
  ARGV[2] now (epoch ms)
  ARGV[3] lock token
  ARGV[4] lock duration (ms)
  ARGV[5] worker id (stored as "pb", processed by, as BullMQ does)
  ARGV[6] the worker's rate limit: jobs per window (0: none)
  ARGV[7] the worker's rate-limit window (ms)
  The queue's own limits in meta win: "concurrency" (jobs active at once, for
  all workers), "max" and "duration" (the global rate limit).
  Output: the JSON text [job id, fields] when a job was taken (fields: its hash as a
          flat array, field, value, ...),
          else {0, 0, when the next delayed job is due in ms (0: none),
          ms until the rate limit lets a job start (0: not limited)}.
  Events: waiting (for promoted jobs), active (with "ts", the clock's now, and "worker";
          minibull's additions, for job timelines on virtual time).
]]
local rcall = redis.call
-- @include "takeNextJob"

local k = {wait = KEYS[1], active = KEYS[2], prioritized = KEYS[3], delayed = KEYS[4],
           pc = KEYS[5], marker = KEYS[6], meta = KEYS[7], events = KEYS[8], limiter = KEYS[9]}
local taken = takeNextJob(k, ARGV[1], tonumber(ARGV[2]), {token = ARGV[3], lockMs = ARGV[4],
                          worker = ARGV[5], limitMax = tonumber(ARGV[6]),
                          limitWindow = tonumber(ARGV[7]), wakeOthers = true})
if taken[2] ~= 0 then
  return taken[1]
end
return taken
