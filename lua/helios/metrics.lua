--- helios.metrics: a node's metrics as Prometheus metric families, and their text
-- exposition (format 0.0.4). docs/metrics.md lists every metric.
--
--   local metrics = require("helios.metrics")
--   local fams = node:metrics()          -- raft.lua: metrics.families(raw, extra)
--   fams.helios_term.samples[1].value    -- families keyed by name
--   io.write(metrics.render(fams))       -- what GET /metrics answers
--
-- A family is { name =, type = "counter" | "gauge" | "histogram", help =, samples = {...} }.
-- A sample is { labels = { k = v } (may be empty), value = n }, or for a histogram
-- { labels =, buckets = { { le = bound, count = cumulative }, ..., { le = math.huge } },
-- sum =, count = }. The raw figures come from the C runtime (csrc/lua/node_metrics.c);
-- collecting them cost the hot path nothing but plain increments there.

-- each is pairs under a name LuaJIT does not specialise: docs/lua-api.md, "Iterating tables".
local each = pairs
local format, concat, sort = string.format, table.concat, table.sort
local huge, floor = math.huge, math.floor

local M = {}

-- ---------------------------------------------------------------------------------------
-- Building families from the raw table.

local ROLES = { "follower", "precandidate", "candidate", "leader" }

local function sorted_keys(t)
    local keys = {}
    for k in each(t or {}) do keys[#keys + 1] = k end
    sort(keys)
    return keys
end

-- A histogram sample from the raw { le, counts, sum, count } (counts per bucket, the last
-- above every bound).
local function hist_sample(h, labels)
    local buckets, acc = {}, 0
    for i, le in ipairs(h.le) do
        acc = acc + (h.counts[i] or 0)
        buckets[i] = { le = le, count = acc }
    end
    buckets[#buckets + 1] = { le = huge, count = h.count }
    return { labels = labels or {}, buckets = buckets, sum = h.sum, count = h.count }
end

--- The families of a node from its raw metrics (core node:metrics()) and what the Lua side
-- knows: extra = { id, version, fsm_errors, lua_heap_bytes, resident_bytes, listeners }
-- (listeners: { control =, client = } of the servers the node runs, each srv:clients()).
function M.families(raw, extra)
    extra = extra or {}
    local fams = {}
    local function family(name, kind, help)
        local f = { name = name, type = kind, help = help, samples = {} }
        fams[name] = f
        return f
    end
    local function one(name, kind, help, value, labels)
        local f = fams[name] or family(name, kind, help)
        f.samples[#f.samples + 1] = { labels = labels or {}, value = value or 0 }
        return f
    end
    local function hist(name, help, h)
        family(name, "histogram", help).samples[1] = hist_sample(h)
    end

    one("helios_node_info", "gauge", "This node: its id and the software version (always 1).",
        1, { id = extra.id or "", version = extra.version or "" })
    for _, role in ipairs(ROLES) do
        one("helios_role", "gauge", "1 for the role this node has now, 0 for the others.",
            raw.role == role and 1 or 0, { role = role })
    end
    one("helios_term", "gauge", "The current term.", raw.term)
    one("helios_elections_total", "counter", "Elections this node started (became candidate).",
        raw.elections)
    for _, role in ipairs(ROLES) do
        one("helios_state_changes_total", "counter", "Role changes, by the role entered.",
            raw.became and raw.became[role], { to = role })
    end
    one("helios_leader_changes_total", "counter",
        "Leaders this node learned: a leader for a new term, or another node.", raw.leader_changes)
    one("helios_commit_index", "gauge", "The highest log index known committed.", raw.commit_index)
    one("helios_applied_index", "gauge", "The highest log index applied to the state machine.",
        raw.applied_index)
    one("helios_last_index", "gauge", "The index of the last entry in the log.", raw.last_index)
    one("helios_first_index", "gauge", "The index of the first entry in the log.", raw.first_index)
    one("helios_log_bytes", "gauge",
        "Payload bytes of the log entries held in memory (first_index to last_index).",
        raw.log_bytes)
    family("helios_peer_match_index", "gauge",
           "Leader only: the highest index known replicated on each peer.")
    family("helios_peer_replication_lag_entries", "gauge",
           "Leader only: entries the peer lacks (last_index - match_index).")
    family("helios_peer_connected", "gauge",
           "1 while this node's outbound connection to the peer is up and authenticated.")
    for _, peer in ipairs(sorted_keys(raw.peers)) do
        local p = raw.peers[peer]
        if p.match then
            one("helios_peer_match_index", "gauge", nil, p.match, { peer = peer })
            local lag = (raw.last_index or 0) - p.match
            one("helios_peer_replication_lag_entries", "gauge", nil, lag > 0 and lag or 0,
                { peer = peer })
        end
        one("helios_peer_connected", "gauge", nil, p.connected and 1 or 0, { peer = peer })
    end

    local hs = raw.hist or {}
    hist("helios_commit_latency_seconds",
         "Leader: from a command's proposal to its commit (commands proposed on this node).",
         hs.commit)
    hist("helios_apply_latency_seconds", "Time the state machine took to apply each entry.",
         hs.apply)
    hist("helios_fsync_duration_seconds", "Duration of each log fdatasync (one per storage round).",
         hs.fsync)
    hist("helios_fsync_entries", "Log entries made durable by each fsync (group commit).",
         hs.entries_per_fsync)
    local st = raw.storage or {}
    one("helios_fsyncs_total", "counter", "Storage rounds (each ends with one fsync).", st.fsyncs)
    one("helios_storage_batches_total", "counter", "Storage batches written.", st.batches)
    one("helios_storage_entries_total", "counter", "Log entries written.", st.entries)
    one("helios_storage_failures_total", "counter", "Storage failures that stopped writes.",
        st.failures)
    one("helios_storage_recoveries_total", "counter", "Recoveries from a storage failure.",
        st.recoveries)

    local sn = raw.snapshots or {}
    one("helios_snapshots_total", "counter", "Snapshots this node took.", sn.taken)
    one("helios_snapshots_installed_total", "counter",
        "Snapshots received from a leader and installed.", sn.installed)
    one("helios_snapshot_index", "gauge", "The index of the current snapshot (0: none).",
        raw.snapshot_index)
    one("helios_snapshot_file_bytes", "gauge", "The size of the current snapshot's file.",
        raw.snapshot_size)
    hist("helios_snapshot_duration_seconds",
         "Time to take a snapshot (the point chosen to the file in place).", hs.snapshot_duration)
    hist("helios_snapshot_size_bytes", "File size of each snapshot taken.", hs.snapshot_size)
    one("helios_snapshot_transfers_total", "counter",
        "InstallSnapshot transfers: started to followers (sent), installed from a leader "
        .. "(received).", sn.transfers, { direction = "sent" })
    one("helios_snapshot_transfers_total", "counter", nil, sn.installed, { direction = "received" })
    one("helios_snapshot_chunks_total", "counter", "InstallSnapshot chunks.", sn.chunks_sent,
        { direction = "sent" })
    one("helios_snapshot_chunks_total", "counter", nil, sn.chunks_received,
        { direction = "received" })
    one("helios_snapshot_transfer_bytes_total", "counter", "Bytes of InstallSnapshot chunks.",
        sn.bytes_sent, { direction = "sent" })
    one("helios_snapshot_transfer_bytes_total", "counter", nil, sn.bytes_received,
        { direction = "received" })
    one("helios_snapshot_transfer_resumes_total", "counter",
        "Transfers resumed from the receiver's offset after a lost chunk.", sn.resumes)

    family("helios_rpc_sent_total", "counter", "Raft messages written to peers, by type.")
    family("helios_rpc_received_total", "counter", "Raft messages received from peers, by type.")
    family("helios_rpc_failures_total", "counter",
           "Raft messages lost or delayed, by type and reason (docs/metrics.md).")
    local types = sorted_keys(raw.rpc_sent)
    for _, t in ipairs(types) do
        one("helios_rpc_sent_total", "counter", nil, raw.rpc_sent[t], { type = t })
        one("helios_rpc_received_total", "counter", nil, (raw.rpc_received or {})[t], { type = t })
    end
    for _, reason in ipairs(sorted_keys(raw.rpc_failed)) do
        for _, t in ipairs(types) do
            one("helios_rpc_failures_total", "counter", nil, raw.rpc_failed[reason][t] or 0,
                { type = t, reason = reason })
        end
    end
    local tr = raw.transport or {}
    one("helios_transport_sent_bytes_total", "counter", "Bytes of Raft frames written to peers.",
        tr.bytes_sent)
    one("helios_transport_received_bytes_total", "counter", "Bytes read from peers.",
        tr.bytes_received)
    one("helios_transport_connects_total", "counter", "Outbound connections established.",
        tr.connects)
    one("helios_transport_disconnects_total", "counter", "Established outbound connections lost.",
        tr.disconnects)
    one("helios_transport_connect_failures_total", "counter",
        "Outbound attempts that failed before their handshake completed.", tr.connect_failures)
    one("helios_transport_accepted_total", "counter",
        "Inbound connections that passed the handshake.", tr.accepted)
    one("helios_transport_handshakes_refused_total", "counter",
        "Handshakes refused (secret, cluster id, version, unknown node).", tr.auth_failures)
    one("helios_transport_bad_frames_total", "counter",
        "Malformed, truncated, oversized or unexpected frames.", tr.bad_frames)
    one("helios_transport_queue_drops_total", "counter",
        "Messages dropped from a peer's send queue: it was full, or the peer was unreachable.",
        tr.queue_drops)

    for _, server in ipairs({ "control", "client" }) do
        local l = extra.listeners and extra.listeners[server]
        if l then
            one("helios_clients", "gauge", "Open client connections, by server.", l.clients,
                { server = server })
            one("helios_clients_refused_total", "counter",
                "Connections refused because max_clients were open, by server.", l.refused,
                { server = server })
        end
    end

    one("helios_fsm_errors_total", "counter", "Entries the state machine failed to apply.",
        extra.fsm_errors)
    one("helios_lua_heap_bytes", "gauge", "The Lua heap in use (collectgarbage(\"count\")).",
        extra.lua_heap_bytes)
    one("process_resident_memory_bytes", "gauge", "Resident memory of the process.",
        extra.resident_bytes)
    return fams
end

-- ---------------------------------------------------------------------------------------
-- The text exposition format 0.0.4.

--- The content type of the text format.
M.CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

local function escape_help(s)
    return (s:gsub("\\", "\\\\"):gsub("\n", "\\n"))
end

local function escape_label(s)
    return (tostring(s):gsub("\\", "\\\\"):gsub("\"", "\\\""):gsub("\n", "\\n"))
end

--- A sample value as the format writes it: integers without a fraction, +Inf, -Inf, NaN,
-- other numbers in the shortest form that reads back the same.
function M.number(v)
    if v ~= v then return "NaN" end
    if v == huge then return "+Inf" end
    if v == -huge then return "-Inf" end
    if v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return format("%d", v) end
    for digits = 6, 17 do
        local s = format("%." .. digits .. "g", v)
        if tonumber(s) == v then return s end
    end
    return format("%.17g", v)
end

local function label_text(labels, extra_key, extra_value)
    local keys = sorted_keys(labels)
    local parts = {}
    for _, k in ipairs(keys) do
        parts[#parts + 1] = format("%s=\"%s\"", k, escape_label(labels[k]))
    end
    if extra_key then
        parts[#parts + 1] = format("%s=\"%s\"", extra_key, escape_label(extra_value))
    end
    return #parts > 0 and "{" .. concat(parts, ",") .. "}" or ""
end

local NAME = "^[a-zA-Z_:][a-zA-Z0-9_:]*$"

--- Render families (a table keyed by name, or a list) as the text format, families sorted
-- by name. Raises on a name the format does not allow.
function M.render(fams)
    local list = {}
    for k, f in each(fams) do
        if type(k) == "string" or type(k) == "number" then list[#list + 1] = f end
    end
    sort(list, function(a, b) return a.name < b.name end)
    local out = {}
    for _, f in ipairs(list) do
        assert(f.name:match(NAME), "metrics: bad metric name " .. tostring(f.name))
        out[#out + 1] = format("# HELP %s %s", f.name, escape_help(f.help or f.name))
        out[#out + 1] = format("# TYPE %s %s", f.name, f.type)
        for _, s in ipairs(f.samples) do
            if f.type == "histogram" then
                for _, b in ipairs(s.buckets) do
                    out[#out + 1] = format("%s_bucket%s %s", f.name,
                                           label_text(s.labels, "le", M.number(b.le)),
                                           M.number(b.count))
                end
                out[#out + 1] = format("%s_sum%s %s", f.name, label_text(s.labels),
                                       M.number(s.sum))
                out[#out + 1] = format("%s_count%s %s", f.name, label_text(s.labels),
                                       M.number(s.count))
            else
                out[#out + 1] = format("%s%s %s", f.name, label_text(s.labels), M.number(s.value))
            end
        end
    end
    out[#out + 1] = ""
    return concat(out, "\n")
end

--- A flat view for people (the console's metrics()): { ["name{labels}"] = value }, with a
-- histogram as its count and sum.
function M.flat(fams)
    local t = {}
    for name, f in each(fams) do
        for _, s in ipairs(f.samples) do
            local key = name .. label_text(s.labels)
            if f.type == "histogram" then
                t[name .. "_count" .. label_text(s.labels)] = s.count
                t[name .. "_sum" .. label_text(s.labels)] = s.sum
            else
                t[key] = s.value
            end
        end
    end
    return t
end

return M
