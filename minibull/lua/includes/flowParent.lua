--[[
  What a child of a flow does to its parent when it ends or is removed (BullMQ's
  updateParentDepsIfNeeded, moveChildFromDependenciesIfNeeded, moveParentToWait and
  removeParentDependencyKey). A child's hash names its parent by "parentKey" (the
  parent's job key) and "parent" (JSON {id, queueKey}, plus the child's failure policy:
  fpof, cpof, idof or rdof set to true). The parent may be on another queue of the same
  prefix, so its queue's keys are built from queueKey, as BullMQ's scripts build them.
  The parent leaves "waiting-children" when its ":dependencies" set is empty.
]]
-- @include "addJobToWait"
-- @include "addBaseMarker"
-- @include "addDelayMarker"
-- @include "getDelayedScore"
-- @include "emitEvent"
-- @include "isQueuePaused"

-- The parent's {id, queueKey, policy flags}, or nil (not a child, or unreadable).
local function decodeParent(rawParent)
  if type(rawParent) ~= "string" then
    return nil
  end
  local ok, parent = pcall(cjson.decode, rawParent)
  if ok and type(parent) == "table" and parent["id"] and parent["queueKey"] then
    return parent
  end
  return nil
end

-- Out of waiting-children into delayed (its own delay counts from now), prioritized or
-- wait, at the end that runs next (BullMQ's RPUSH). now is nil on a removal (a script with
-- no clock): the delay is skipped there, as BullMQ's removeParentDependencyKey skips it.
local function moveParentToWait(parent, parentKey, now)
  local q, parentId = parent["queueKey"] .. ":", parent["id"]
  local attrs = rcall("HMGET", parentKey, "priority", "delay")
  local priority, delay = tonumber(attrs[1]) or 0, tonumber(attrs[2]) or 0
  if delay > 0 and now then
    local score, due = getDelayedScore(q .. "delayed", now, delay)
    rcall("ZADD", q .. "delayed", score, parentId)
    emitEvent(q .. "events", q .. "meta", "delayed", "jobId", parentId, "delay", due)
    addDelayMarker(q .. "marker", q .. "delayed")
  else
    addJobToWait(q .. "wait", q .. "prioritized", q .. "pc", parentId, priority, "RPUSH")
    addBaseMarker(q .. "marker", isQueuePaused(q .. "meta"))
    emitEvent(q .. "events", q .. "meta", "waiting", "jobId", parentId,
              "prev", "waiting-children")
  end
end

-- The parent moves on if it is still waiting for its children.
local function moveParentIfWaiting(parent, parentKey, now)
  if rcall("ZREM", parent["queueKey"] .. ":waiting-children", parent["id"]) == 1 then
    moveParentToWait(parent, parentKey, now)
  end
end

-- ... once no child is pending.
local function moveParentIfNoPending(parent, parentKey, now)
  if rcall("SCARD", parentKey .. ":dependencies") == 0 then
    moveParentIfWaiting(parent, parentKey, now)
  end
end

-- A child completed: its return value goes into the parent's ":processed" hash.
local function childCompleted(childKey, parentKey, rawParent, returnvalue, now)
  local parent = decodeParent(rawParent)
  if parent and rcall("SREM", parentKey .. ":dependencies", childKey) == 1 then
    rcall("HSET", parentKey .. ":processed", childKey, returnvalue)
    moveParentIfNoPending(parent, parentKey, now)
  end
end

-- fail_parent_on_failure: the parent runs now (from waiting-children or delayed) only to
-- fail ("defa"); a parent already running or waiting fails when it next ends or starts.
local function failParent(parent, parentKey, childKey, now)
  local q, parentId = parent["queueKey"] .. ":", parent["id"]
  local failure = "child " .. childKey .. " failed"
  if rcall("ZREM", q .. "waiting-children", parentId) == 1 then
    rcall("HSET", parentKey, "defa", failure)
    moveParentToWait(parent, parentKey, now)
  elseif rcall("ZREM", q .. "delayed", parentId) == 1 then
    rcall("HSET", parentKey, "defa", failure, "delay", 0)
    moveParentToWait(parent, parentKey, now)
  elseif not rcall("ZSCORE", q .. "failed", parentId) and rcall("EXISTS", parentKey) == 1 then
    rcall("HSET", parentKey, "defa", failure)
  end
end

-- A child failed for good: what happens to the parent is the child's policy. Without one,
-- the child stays a dependency and the parent waits (as BullMQ: retry the child).
-- continue_parent_on_failure starts the parent now, even with other children pending
-- (its processor decides; completing with children pending fails it, -4), as BullMQ's.
local function childFailed(childKey, parentKey, rawParent, reason, now)
  local parent = decodeParent(rawParent)
  if not parent or rcall("SREM", parentKey .. ":dependencies", childKey) == 0 then
    return
  end
  if parent["fpof"] then
    rcall("ZADD", parentKey .. ":unsuccessful", now, childKey)
    failParent(parent, parentKey, childKey, now)
  elseif parent["cpof"] then
    rcall("HSET", parentKey .. ":failed", childKey, reason)
    moveParentIfWaiting(parent, parentKey, now)
  elseif parent["idof"] then
    rcall("HSET", parentKey .. ":failed", childKey, reason)
    moveParentIfNoPending(parent, parentKey, now)
  elseif parent["rdof"] then
    moveParentIfNoPending(parent, parentKey, now)
  else
    rcall("SADD", parentKey .. ":dependencies", childKey)  -- no policy: still pending
  end
end

-- A child removed (remove, clean, drain, a trim): no longer a dependency of its parent,
-- which moves on if it was the last (BullMQ's removeParentDependencyKey, not "hard").
local function removeParentDependency(childKey, now)
  local attrs = rcall("HMGET", childKey, "parentKey", "parent")
  local parent = decodeParent(attrs[2])
  if parent and rcall("SREM", attrs[1] .. ":dependencies", childKey) == 1 then
    moveParentIfNoPending(parent, attrs[1], now)
  end
end
