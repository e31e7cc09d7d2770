-- wrk script for bench/server.sh: each request takes the next path from a list file, so
-- every server sees the same photos in the same proportions.
--
--     wrk -t2 -c8 -d20s --latency -s bench/server_rotate.lua http://127.0.0.1:PORT -- PATHS_FILE
--
-- PATHS_FILE holds one request target per line ("/images/a.jpg?w=800&q=80&format=jpeg").
-- Each wrk thread starts at a different offset so the threads do not move in lockstep.

local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
end

function init(args)
   paths = {}
   for line in io.lines(args[1]) do
      if #line > 0 then
         paths[#paths + 1] = line
      end
   end
   if #paths == 0 then
      error("no request paths in " .. tostring(args[1]))
   end
   index = ((id or 0) * 3) % #paths
end

function request()
   index = index % #paths + 1
   return wrk.format("GET", paths[index])
end
