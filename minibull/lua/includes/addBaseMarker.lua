--[[
  Wakes one idle worker: member "0" at score 0 in the marker zset means
  "a job is ready now". Paused queues get no marker.
]]
local function addBaseMarker(markerKey, paused)
  if not paused then
    rcall("ZADD", markerKey, 0, "0")
  end
end
