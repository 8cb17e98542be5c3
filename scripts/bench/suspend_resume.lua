-- Alternates suspend and resume over the children listed in $CHILDREN (space-separated ids):
-- request 2k suspends child k, request 2k+1 resumes it. Every request is a real transition unless
-- another connection got to the same child first.
local children = {}
for id in string.gmatch(os.getenv("CHILDREN") or "", "%S+") do
  table.insert(children, id)
end
local n = math.random(0, 1000) * 2

request = function()
  local child = children[(math.floor(n / 2) % #children) + 1]
  local action = (n % 2 == 0) and "suspend" or "resume"
  n = n + 1
  return wrk.format("POST", "/v1/organizations/" .. child .. "/" .. action)
end
