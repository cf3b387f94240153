-- wrk script of `make bench` (bench/run.py writes the data file and reads the BENCH_JSON line).
--
--   wrk -t1 -c64 -d15s -s bench/scenarios.lua URL -- <data.lua> <threads> [<seq offset>] [<state out>]
--
-- <data.lua> returns { kind = ..., users = { {auth = "Bearer ...", prefix = "/api/<user>"} ... }, ... }
-- and the kind says how requests are made:
--   static   `reqs` = { {u = <user>, method, path, body?, headers?} ... }, all pre-formatted in
--            init(); request() picks one at random (get-one, lists, create, PATCH without If-Match,
--            the no-op complete, the mix of the soak).
--   seq      `items` = { {<user>, "<task id>"} ... } taken in order, each once, from <seq offset>
--            (the warm-up's count, so the measured run does not repeat it): `method` `suffix`
--            on every task, e.g. PATCH .../complete on open tasks = a real transition each time.
--            Requests past the end of the list wrap around (counted as "wrapped": no-ops).
--   ifmatch  `slots` = { {<user>, "<task id>", <version>} ... }: each task is in flight on at most
--            one connection at a time; request() takes a free slot and sends PATCH with
--            If-Match: "<id>.<version>" and X-Request-ID: s<slot>; response() reads the new
--            version from the ETag and frees the slot. After a 412 the slot first re-reads its
--            task with a GET (counted as "resyncs"). The versions are written to <state out> in
--            done() (-1: a request was still in flight), and run.py re-reads the unknown ones,
--            so the next run (warm-up -> measured) starts from current versions.
-- Every status outside 200-399 is an error; the count per status code is reported.

local threads = {}
local thread_no = 0

function setup(thread)
   thread_no = thread_no + 1
   thread:set("tid", thread_no)
   table.insert(threads, thread)
end

-- per-thread state (each wrk thread has its own Lua state)
codes = {}
errors = 0
first_bad = nil
issued = 0
wrapped = 0
resyncs = 0
vstate = {}
state_out = nil

local kind, users
local reqs, nreq = {}, 0
local items, nitems, seq_method, seq_suffix, offset, nthreads, counter = nil, 0, nil, nil, 0, 1, 0
local slots, free, head, tail, body_tpl, byid, n = {}, {}, 1, 0, nil, {}, 0

function init(args)
   local data = dofile(args[1])
   nthreads = tonumber(args[2] or "1") or 1
   offset = tonumber(args[3] or "0") or 0
   state_out = args[4]
   kind = data.kind
   users = data.users
   tid = tid or 1
   if kind == "static" then
      for i, e in ipairs(data.reqs) do
         local h = {}
         if e.u then h["Authorization"] = users[e.u].auth end
         if e.body then h["Content-Type"] = "application/json" end
         if e.headers then for k, v in pairs(e.headers) do h[k] = v end end
         reqs[i] = wrk.format(e.method, e.path, h, e.body)
      end
      nreq = #reqs
   elseif kind == "seq" then
      items = data.items
      nitems = #items
      seq_method = data.method
      seq_suffix = data.suffix or ""
      for _, u in ipairs(users) do u.h = { Authorization = u.auth } end
   elseif kind == "ifmatch" then
      body_tpl = data.body
      for i, s in ipairs(data.slots) do
         if (i - 1) % nthreads == tid - 1 then
            local u = users[s[1]]
            local path = u.prefix .. "/tasks/" .. s[2]
            slots[i] = {
               id = s[2], v = s[3], path = path,
               h = { Authorization = u.auth, ["Content-Type"] = "application/json",
                     ["X-Request-ID"] = "s" .. i },
               gh = { Authorization = u.auth, ["X-Request-ID"] = "s" .. i },
            }
            byid[s[2]] = i
            vstate[s[2]] = s[3]
            tail = tail + 1
            free[tail] = i
         end
      end
   else
      error("unknown kind " .. tostring(kind))
   end
   math.randomseed(os.time() * 1000 + tid * 7919)
end

local function take_slot()
   if head > tail then
      -- More connections than slots (or slots lost to timeouts): share one, a 412 may follow.
      local any = next(slots)
      return any
   end
   local i = free[head]
   free[head] = nil
   head = head + 1
   return i
end

function request()
   issued = issued + 1
   if kind == "static" then
      return reqs[math.random(nreq)]
   elseif kind == "seq" then
      local k = offset + tid + counter * nthreads
      counter = counter + 1
      if k > nitems then
         wrapped = wrapped + 1
         k = ((k - 1) % nitems) + 1
      end
      local it = items[k]
      local u = users[it[1]]
      return wrk.format(seq_method, u.prefix .. "/tasks/" .. it[2] .. seq_suffix, u.h, nil)
   else
      local i = take_slot()
      local s = slots[i]
      -- In flight: if wrk stops before the answer comes, the version is unknown (-1) and
      -- run.py re-reads it before the next run.
      vstate[s.id] = -1
      if s.v == nil then
         resyncs = resyncs + 1
         return wrk.format("GET", s.path, s.gh, nil)
      end
      n = n + 1
      s.h["If-Match"] = '"' .. s.id .. "." .. s.v .. '"'
      return wrk.format("PATCH", s.path, s.h, string.format(body_tpl, n))
   end
end

function response(status, headers, body)
   codes[status] = (codes[status] or 0) + 1
   if status < 200 or status > 399 then
      errors = errors + 1
      if first_bad == nil then
         first_bad = tostring(status) .. " " .. string.sub(body or "", 1, 300)
      end
   end
   if kind == "ifmatch" then
      local rid = headers["x-request-id"] or headers["X-Request-ID"]
      local etag = headers["etag"] or headers["ETag"]
      local i = rid and tonumber(string.sub(rid, 2)) or nil
      if (i == nil or slots[i] == nil) and etag then
         i = byid[string.match(etag, '^"(.*)%.%d+"$') or ""]
      end
      if i ~= nil and slots[i] ~= nil then
         local s = slots[i]
         local v = etag and tonumber(string.match(etag, '%.(%d+)"$'))
         if v then
            s.v = v
         elseif status == 412 then
            s.v = nil
         end
         vstate[s.id] = s.v or -1
         tail = tail + 1
         free[tail] = i
      end
   end
end

local function json_str(s)
   s = string.gsub(s, '[%c"\\]', function(c)
      if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" end
      return string.format("\\u%04x", string.byte(c))
   end)
   return '"' .. s .. '"'
end

function done(summary, latency, requests)
   local all = {}
   local bad, iss, wr, rs, sample, state_path = 0, 0, 0, 0, nil, nil
   local versions = {}
   for _, t in ipairs(threads) do
      for code, count in pairs(t:get("codes") or {}) do
         all[code] = (all[code] or 0) + count
      end
      bad = bad + (t:get("errors") or 0)
      iss = iss + (t:get("issued") or 0)
      wr = wr + (t:get("wrapped") or 0)
      rs = rs + (t:get("resyncs") or 0)
      sample = sample or t:get("first_bad")
      state_path = state_path or t:get("state_out")
      for id, v in pairs(t:get("vstate") or {}) do versions[id] = v end
   end
   if state_path and state_path ~= "" and next(versions) ~= nil then
      local f = assert(io.open(state_path, "w"))
      for id, v in pairs(versions) do f:write(id, " ", v, "\n") end
      f:close()
   end
   local parts = {}
   for code, count in pairs(all) do
      table.insert(parts, string.format('"%d":%d', code, count))
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors":%d,"codes":{%s},' ..
      '"issued":%d,"wrapped":%d,"resyncs":%d,' ..
      '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
      '"lat_mean_us":%.1f,"lat_stdev_us":%.1f,"lat_p50_us":%d,"lat_p90_us":%d,"lat_p95_us":%d,' ..
      '"lat_p99_us":%d,"lat_p999_us":%d,"lat_max_us":%d,"first_bad":%s}\n',
      summary.requests, summary.duration, summary.bytes, bad, table.concat(parts, ","),
      iss, wr, rs,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.stdev, latency:percentile(50), latency:percentile(90),
      latency:percentile(95), latency:percentile(99), latency:percentile(99.9), latency.max,
      sample and json_str(sample) or "null"))
end
