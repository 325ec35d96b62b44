--[[
  Removes a job from whatever state it is in, with its hash, lock, logs, stalled
  mark and deduplication id (includes/removeJob). A job a worker is running
  (locked) is not removed, nor the pending run of a job scheduler (BullMQ's
  removeJob returns -8 for it): remove the scheduler instead.
  A parent of a flow goes with all its children, grandchildren and so on (pending,
  processed or failed, on any queue of the prefix), as BullMQ's removeJob does; if any
  of them is running, nothing is removed (0). A removed child frees its parent
  (includes/flowParent).

  KEYS[1] wait        KEYS[2] active   KEYS[3] prioritized   KEYS[4] delayed
  KEYS[5] completed   KEYS[6] failed   KEYS[7] stalled       KEYS[8] meta
  KEYS[9] events      KEYS[10] repeat  KEYS[11] waiting-children
  ARGV[1] job key prefix
  ARGV[2] job id
  ARGV[3] deduplication key prefix ("bull:<queue>:de:")
  ARGV[4] the states a job can be in, from keys.py (scripts.remove_job_args): a JSON
          list of {state, key suffix, "list" or "zset", the index of its key in KEYS}
  Output: 1 removed, 0 locked by a worker, -1 no such job, -8 a scheduler's pending run.
  Events: removed (each child's on its own queue).
]]
local rcall = redis.call
-- @include "removeJob"
-- @include "schedulerRunId"
-- @include "emitEvent"

local prefix, jobId, states = ARGV[1], ARGV[2], cjson.decode(ARGV[4])
local jobKey = prefix .. jobId
if rcall("EXISTS", jobKey) == 0 then
  return -1
end
if rcall("EXISTS", jobKey .. ":lock") == 1 then
  return 0
end
if isPendingSchedulerRun(KEYS[10], prefix, jobId) then
  return -8
end

-- The job keys of every descendant, parents before their children (BullMQ splits a key at
-- its last ":" too: the child's queue prefix, then its id).
local function descendants(rootKey)
  local found, index = {}, 0
  local current = rootKey
  while current do
    for _, childKey in ipairs(rcall("SMEMBERS", current .. ":dependencies")) do
      table.insert(found, childKey)
    end
    local processed = rcall("HKEYS", current .. ":processed")
    local failed = rcall("HKEYS", current .. ":failed")
    local unsuccessful = rcall("ZRANGE", current .. ":unsuccessful", 0, -1)
    for _, list in ipairs({processed, failed, unsuccessful}) do
      for _, childKey in ipairs(list) do
        table.insert(found, childKey)
      end
    end
    index = index + 1
    current = found[index]
  end
  return found
end

-- A job out of every state of its queue (keyOf: a state's key there); returns the state
-- it was in.
local function leaveStates(keyOf, id)
  local prev = "unknown"
  for _, state in ipairs(states) do
    local left
    if state[3] == "list" then
      left = rcall("LREM", keyOf(state), 0, id)
    else
      left = rcall("ZREM", keyOf(state), id)
    end
    if left > 0 then
      prev = state[1]
    end
  end
  return prev
end

local children = descendants(jobKey)
for _, childKey in ipairs(children) do
  if rcall("EXISTS", childKey .. ":lock") == 1 then
    return 0
  end
end

local function ourKey(state)
  return KEYS[state[4]]
end
emitEvent(KEYS[9], KEYS[8], "removed", "jobId", jobId, "prev", leaveStates(ourKey, jobId))
removeJob(prefix, jobId, ARGV[3], KEYS[7])
for _, childKey in ipairs(children) do
  local childPrefix, childId = string.match(childKey, "^(.*:)([^:]*)$")
  if childPrefix and rcall("EXISTS", childKey) == 1 then
    local q = childPrefix
    local prev = leaveStates(function(state) return q .. state[2] end, childId)
    removeJob(childPrefix, childId, q .. "de:", q .. "stalled")
    emitEvent(q .. "events", q .. "meta", "removed", "jobId", childId, "prev", prev)
  end
end
return 1
