--[[
  Adds a whole flow (FlowProducer.add): a tree of jobs, parents before their
  children, in one call, so that either every job is written or none is (BullMQ's
  addParentJob and addStandardJob with a parent, run for each node in one script).
  A node with children waits in its queue's "waiting-children" zset; the others go
  to wait, prioritized or delayed as addJob puts them. Each child's key goes into its
  parent's "<parent key>:dependencies" set, and the child's hash names the parent by
  "parentKey" and "parent" (JSON {id, queueKey[, fpof|cpof|idof|rdof: true]}).

  KEYS[1] the "id" key of the root's queue. The other queues' keys are built from their
          queueKey (as BullMQ builds a parent's): on a Redis Cluster every queue of the
          flow must be in KEYS[1]'s slot (one hash tag; FlowProducer checks it first).
  ARGV[1] now (epoch ms)
  ARGV[2] JSON array of nodes, parents first: {queueKey ("bull:<queue>"), id ("" for a
          new numeric id), name, data (JSON text), opts (JSON text), delay (ms),
          priority, lifo, parent (index of the parent node, 1-based; 0 for the root),
          policy ("fpof", "cpof", "idof", "rdof" or ""), children (how many), and for
          a root that joins an existing job as its child (a processor adding children to
          its own job): parentId and parentQueueKey}
  ARGV[3] the reserved job ids (keys.RESERVED_JOB_IDS), separated by spaces
  Output: the job ids, in the order of the nodes; or {-100, node index} when a job id is
          reserved, {-11, node index} when a job with that id exists, {-5, node index} when
          the existing parent is missing: nothing is written.
  Events (on each job's queue): added, then waiting-children, waiting or delayed.
]]
local rcall = redis.call
-- @include "readQueueMeta"
-- @include "addJobToWait"
-- @include "addBaseMarker"
-- @include "addDelayMarker"
-- @include "getDelayedScore"
-- @include "emitEvent"

local now = tonumber(ARGV[1])
local nodes = cjson.decode(ARGV[2])
local reservedIds = " " .. ARGV[3] .. " "

-- Every check before the first write (all or nothing). The flow makes new jobs only:
-- an id that exists is refused (BullMQ would adopt the existing job instead).
for index, node in ipairs(nodes) do
  if node["parentId"] and rcall("EXISTS", node["parentQueueKey"] .. ":" .. node["parentId"]) == 0 then
    return {-5, index}
  end
  local jobId = node["id"]
  if jobId ~= "" then
    if not string.find(jobId, " ", 1, true)
       and string.find(reservedIds, " " .. jobId .. " ", 1, true) then
      return {-100, index}
    end
    if rcall("EXISTS", node["queueKey"] .. ":" .. jobId) == 1 then
      return {-11, index}
    end
  end
end

local ids = {}
local readyQueues, delayedQueues = {}, {}

-- The hash fields of a node; a child's also name its parent, whose ":dependencies" it joins.
local function jobFields(node, jobKey)
  local fields = {"name", node["name"], "data", node["data"], "opts", node["opts"],
                  "timestamp", now, "delay", node["delay"], "priority", node["priority"]}
  local parentIndex = tonumber(node["parent"])
  local parent
  if parentIndex > 0 then
    parent = {id = ids[parentIndex], queueKey = nodes[parentIndex]["queueKey"]}
  elseif node["parentId"] then
    parent = {id = node["parentId"], queueKey = node["parentQueueKey"]}
  end
  if parent then
    local parentKey = parent["queueKey"] .. ":" .. parent["id"]
    if node["policy"] ~= "" then
      parent[node["policy"]] = true
    end
    table.insert(fields, "parentKey")
    table.insert(fields, parentKey)
    table.insert(fields, "parent")
    table.insert(fields, cjson.encode(parent))
    rcall("SADD", parentKey .. ":dependencies", jobKey)
  end
  return fields
end

local function addNode(index, node)
  local q = node["queueKey"] .. ":"
  local counter = rcall("INCR", q .. "id")
  local jobId = node["id"] ~= "" and node["id"] or tostring(counter)
  ids[index] = jobId
  local jobKey = q .. jobId
  rcall("HSET", jobKey, unpack(jobFields(node, jobKey)))
  emitEvent(q .. "events", q .. "meta", "added", "jobId", jobId, "name", node["name"])
  local delay, priority = tonumber(node["delay"]), tonumber(node["priority"])
  if tonumber(node["children"]) > 0 then
    rcall("ZADD", q .. "waiting-children", now, jobId)
    emitEvent(q .. "events", q .. "meta", "waiting-children", "jobId", jobId)
  elseif delay > 0 then
    local score, due = getDelayedScore(q .. "delayed", now, delay)
    rcall("ZADD", q .. "delayed", score, jobId)
    emitEvent(q .. "events", q .. "meta", "delayed", "jobId", jobId, "delay", due)
    delayedQueues[q] = true
  else
    addJobToWait(q .. "wait", q .. "prioritized", q .. "pc", jobId, priority,
                 node["lifo"] and "RPUSH" or "LPUSH")
    emitEvent(q .. "events", q .. "meta", "waiting", "jobId", jobId)
    readyQueues[q] = true
  end
end

for index, node in ipairs(nodes) do
  addNode(index, node)
end
-- The markers, once per queue (a paused queue gets no ready marker).
for q in pairs(readyQueues) do
  addBaseMarker(q .. "marker", readQueueMeta(q .. "meta")[1] ~= false)
end
for q in pairs(delayedQueues) do
  addDelayMarker(q .. "marker", q .. "delayed")
end
return ids
