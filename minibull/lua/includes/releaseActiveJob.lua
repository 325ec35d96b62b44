--[[
  The first writes of every script that ends a run (moveToFinished, retryJob,
  moveToDelayed), done only once every check has passed, so that a refusal
  changes nothing: the lock is read, then LREM "active" both checks and writes,
  and only then is the lock deleted.
  releaseActiveJob returns 0 when the job was in "active" under this token: it
  is out of "active" now, its lock deleted and its stalled mark gone. Else:
  -2 the lock is missing (it expired: the job may belong to another worker now),
  -6 another worker holds the lock, -3 the job is not in "active".
  A run that ends the job records its token in the job's "mbf" field (minibull's own,
  a JSON array, the token first) with the writes it does anyway: see endedBy.
]]
local function releaseActiveJob(activeKey, stalledKey, jobKey, jobId, token)
  local lockKey = jobKey .. ":lock"
  local holder = rcall("GET", lockKey)
  if holder ~= token then
    return holder and -6 or -2
  end
  if rcall("LREM", activeKey, -1, jobId) == 0 then
    return -3
  end
  rcall("DEL", lockKey)
  rcall("SREM", stalledKey, jobId)
  return 0
end

-- A job whose hash is gone (deleted by hand, evicted under allkeys-lru) still leaves
-- "active" and its lock and stalled mark are dropped, unless another worker holds it:
-- else the stalled sweep would bring its id back for ever, a job with no data.
local function dropMissingJob(activeKey, stalledKey, jobKey, jobId, token)
  local lockKey = jobKey .. ":lock"
  local holder = rcall("GET", lockKey)
  if holder and holder ~= token then
    return
  end
  rcall("LREM", activeKey, -1, jobId)
  rcall("DEL", lockKey)
  rcall("SREM", stalledKey, jobId)
end

-- The record "mbf" when it says the run under this token ended already, else nil. A call
-- whose reply was lost runs again (redis-py re-sends it, or the worker retries it): its
-- lock is gone, and without this it would answer -2 for a job it did end. A token is made
-- once per take (the worker's random id and a counter), so only the same call matches.
-- Read only once the lock check failed: nothing on the normal path.
local function endedBy(record, token)
  if not record then
    return nil
  end
  local ok, decoded = pcall(cjson.decode, record)
  if ok and type(decoded) == "table" and decoded[1] == token then
    return decoded
  end
  return nil
end
