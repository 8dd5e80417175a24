#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# modelkeeperd watching many models: CPU and memory of the daemon while it scrapes N models
# every INTERVAL from one local HTTP server and evaluates their rules, against Prometheus
# (Debian package: prometheus) doing the same scrapes with the same rules, in one run.
#
# The server is nginx-light serving one static exposition of a realistic model server (~80
# series: process and runtime figures, request counters, two latency histograms, GPU gauges) at
# /metrics/<model>, gzip-compressed when asked (as Go and Python exporters do). Each model file
# has three rules (error rate over rate(), p99 latency with histogram_quantile over a 5m range,
# resident memory) and a rollout section. Prometheus gets the same targets and the same three
# expressions as alerting rules, evaluated per target (by instance), every INTERVAL.
#
# Figures: CPU from /proc/PID/stat (utime + stime) over DURATION seconds after a warm-up of
# two intervals once every model is being watched; RSS from /proc/PID/status, the largest
# value seen during the window (sampled every second) and VmHWM (peak since start, start-up
# included). Targets: <= 3 % of one core, RSS <= 16 MiB.
#
#   bench/watch.sh [BUILDDIR] [MODELS] [INTERVAL_S] [DURATION_S]
#   env: GZIP=0 (serve uncompressed), PEER=0 (skip Prometheus), PROFILE=1 (perf report of the daemon),
#        POLICY=light (two rules on a gauge and a 1m rate, no histogram)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
models=${2:-1000}
interval=${3:-10}
duration=${4:-60}
gzip=${GZIP:-1}
peer=${PEER:-1}
policy=${POLICY:-full}
python=/usr/bin/python3

daemon=$build/daemon/modelkeeperd
agent=$build/agent/modelkeeper-agent
[ -x "$daemon" ] && [ -x "$agent" ] || { echo "build first: ninja -C $build"; exit 1; }
command -v nginx >/dev/null || { echo "SKIP: nginx not found (apt-get install nginx-light)"; exit 77; }

tmp=$(mktemp -d /tmp/mk-bench-watch.XXXXXX)
chmod 755 "$tmp" # nginx workers run unprivileged
pids=()
cleanup() {
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
        wait 2>/dev/null || true
        rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { $python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- the exposition --------------------------------------------------------------------------
$python - "$tmp/metrics.prom" <<'EOF'
import sys
out = []
def fam(name, typ, help_, samples):
    out.append(f"# HELP {name} {help_}")
    out.append(f"# TYPE {name} {typ}")
    for labels, v in samples:
        out.append(f"{name}{{{labels}}} {v}" if labels else f"{name} {v}")
fam("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", [("", 8123.41)])
fam("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", [("", 5.36870912e9)])
fam("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", [("", 2.1474836e10)])
fam("process_open_fds", "gauge", "Number of open file descriptors.", [("", 213)])
fam("process_max_fds", "gauge", "Maximum number of open file descriptors.", [("", 1048576)])
fam("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", [("", 1764400000.12)])
fam("python_gc_objects_collected_total", "counter", "Objects collected during gc",
    [(f'generation="{g}"', 1000 * (g + 1)) for g in range(3)])
fam("python_gc_collections_total", "counter", "Number of times this generation was collected",
    [(f'generation="{g}"', 100 * (g + 1)) for g in range(3)])
fam("python_info", "gauge", "Python platform information",
    [('implementation="CPython",major="3",minor="11",patchlevel="2",version="3.11.2"', 1)])
for name, help_ in (("request_success_total", "Successful inference requests."),
                    ("request_failure_total", "Failed inference requests.")):
    fam(name, "counter", help_, [(f'model="digits",version="{v}"', 123456 if "success" in name else 12)
                                 for v in (1, 2)])
les = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]
for name in ("request_duration_seconds", "queue_duration_seconds"):
    out.append(f"# HELP {name} Latency.")
    out.append(f"# TYPE {name} histogram")
    for v in (1, 2) if name.startswith("request") else (1,):
        for i, le in enumerate(les):
            out.append(f'{name}_bucket{{model="digits",version="{v}",le="{le}"}} {1000 * (i + 1)}')
        out.append(f'{name}_sum{{model="digits",version="{v}"}} 1234.5')
        out.append(f'{name}_count{{model="digits",version="{v}"}} {1000 * len(les)}')
for name, help_ in (("gpu_utilization", "GPU utilization (0.0 - 1.0)."),
                    ("gpu_memory_used_bytes", "GPU memory used."),
                    ("gpu_memory_total_bytes", "GPU memory total."),
                    ("gpu_power_usage_watts", "GPU power usage.")):
    fam(name, "gauge", help_, [(f'gpu_uuid="GPU-{g:08x}"', 0.5 + g) for g in range(2)])
fam("inference_count", "counter", "Inferences performed.", [('model="digits",version="2"', 987654)])
fam("inference_exec_count", "counter", "Model executions.", [('model="digits",version="2"', 98765)])
fam("cache_hit_total", "counter", "Cache hits.", [('model="digits"', 4567)])
samples = sum(1 for l in out if not l.startswith("#"))
open(sys.argv[1], "w").write("\n".join(out) + "\n")
print(f"exposition: {samples} series, {len(chr(10).join(out)) + 1} bytes")
EOF

# --- the server ------------------------------------------------------------------------------
port=$(free_port)
gzip_conf="gzip off;"
[ "$gzip" = 1 ] && gzip_conf="gzip on; gzip_types text/plain; gzip_min_length 256; gzip_comp_level 1;"
cat > "$tmp/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 4096; }
http {
        access_log off;
        keepalive_requests 1000000;
        keepalive_timeout 120s;
        types { }
        default_type "text/plain; version=0.0.4; charset=utf-8";
        $gzip_conf
        client_body_temp_path $tmp/nginx-tmp;
        proxy_temp_path $tmp/nginx-tmp;
        fastcgi_temp_path $tmp/nginx-tmp;
        uwsgi_temp_path $tmp/nginx-tmp;
        scgi_temp_path $tmp/nginx-tmp;
        server {
                listen 127.0.0.1:$port;
                location /metrics/ { root $tmp; try_files /metrics.prom =404; }
        }
}
EOF
mkdir -p "$tmp/nginx-tmp"
nginx -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log" &
pids+=($!)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/metrics/x" >/dev/null && break; sleep 0.1; done

# --- measuring -------------------------------------------------------------------------------
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
anon_kib() { awk '/^RssAnon:/ { print $2 }' "/proc/$1/status"; }

# measure NAME PID: prints "NAME cpu% rss_max_kib hwm_kib anon_max_kib instructions" after DURATION
# seconds. Instructions (user space, from perf when it is there) vary far less than CPU time on a
# machine shared with other work: cache misses and frequency changes do not move them.
measure() {
        local name=$1 pid=$2 t0 c0 t1 c1 rss max=0 anon amax=0 ins=- statpid=
        if command -v perf >/dev/null; then
                perf stat -x, -e instructions:u -p "$pid" -o "$tmp/$name.stat" -- sleep "$duration" 2>/dev/null &
                statpid=$!
        fi
        t0=$(date +%s.%N)
        c0=$(cpu_ticks "$pid")
        for _ in $(seq "$duration"); do
                sleep 1
                rss=$(rss_kib "$pid")
                anon=$(anon_kib "$pid")
                [ "$rss" -gt "$max" ] && max=$rss
                [ "$anon" -gt "$amax" ] && amax=$anon
        done
        t1=$(date +%s.%N)
        c1=$(cpu_ticks "$pid")
        if [ -n "$statpid" ]; then
                wait "$statpid" || true
                ins=$(awk -F, '/instructions/ && $1 ~ /^[0-9]+$/ { print $1 }' "$tmp/$name.stat")
                [ -n "$ins" ] || ins=- # no hardware counters (a VM)
        fi
        echo "$name $(echo "($c1 - $c0) / $ticks / ($t1 - $t0) * 100" | bc -l) $max $(hwm_kib "$pid") $amax $ins"
}

report() {
        # report NAME CPU RSS HWM ANON INSTRUCTIONS
        printf '%-14s CPU %6.2f %% of one core   RSS max %6.1f MiB (anonymous %6.1f MiB)   VmHWM %6.1f MiB\n' \
                "$1" "$2" "$(echo "$3 / 1024" | bc -l)" "$(echo "$5 / 1024" | bc -l)" "$(echo "$4 / 1024" | bc -l)"
        [ "$6" = - ] || printf '%-14s %.0f million user-space instructions per second\n' "" \
                "$(echo "$6 / $duration / 1000000" | bc -l)"
}

echo "$models models, scrape every ${interval}s, policy $policy, gzip=$gzip, window ${duration}s; $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"

# --- modelkeeperd ----------------------------------------------------------------------------
mkdir -p "$tmp/mk/models.d"
cat > "$tmp/mk/modelkeeper.yaml" <<EOF
daemon:
  state_directory: $tmp/mk/state
  runtime_directory: $tmp/mk/run
  metrics_textfile: $tmp/mk/modelkeeper.prom
EOF
$python - "$tmp/mk/models.d" "$models" "$port" "$interval" "$policy" <<'EOF'
import sys
d, n, port, every, policy = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
if policy == "light":
    # Gauges and a 1m rate: what a policy that needs no histogram keeps.
    body = """  define:
    errors: sum(rate(request_failure_total[1m]))
rules:
  - {name: errors, when: errors > 1, for: 2m, action: rollback}
  - {name: memory, when: process_resident_memory_bytes > 6GiB, for: 5m, action: log}
rollout:
  interval: 1m
  iterations: 5
  checks:
    - {name: errors, expr: errors, max: 0.5}
"""
else:
    body = """  define:
    errors: sum(rate(request_failure_total[1m]))
    requests: sum(rate(request_success_total[1m])) + errors
    p99: histogram_quantile(0.99, sum by (le) (rate(request_duration_seconds_bucket[5m])))
rules:
  - {name: error-rate, when: errors / requests > 0.05, for: 2m, action: rollback}
  - {name: latency, when: p99 > 2, for: 5m, action: log}
  - {name: memory, when: process_resident_memory_bytes > 6GiB, for: 5m, action: {recompress: int8}}
rollout:
  interval: 1m
  iterations: 5
  checks:
    - {name: errors, expr: errors / requests, max: 0.01}
    - {name: latency, expr: p99, max: "baseline(p99) * 1.2"}
recompress:
  profiles:
    int8: {method: int8}
"""
for i in range(n):
    name = f"m{i:04d}"
    with open(f"{d}/{name}.yaml", "w") as f:
        f.write(f"""model: {name}
metrics:
  scrape: {{url: "http://127.0.0.1:{port}/metrics/{name}", every: {every}s}}
""" + body)
EOF

MODELKEEPER_AGENT=$agent MODELKEEPER_LOG_TARGET=console MODELKEEPER_LOG_LEVEL=info \
        "$daemon" --config "$tmp/mk/modelkeeper.yaml" > "$tmp/mk/daemon.log" 2>&1 &
mk=$!
pids+=($mk)
start=$(date +%s)
# Each model reconciles its store first (one agent job each), then starts watching.
while [ "$(grep -c ': watching 1 target' "$tmp/mk/daemon.log" || true)" -lt "$models" ]; do
        kill -0 "$mk" 2>/dev/null || { echo "modelkeeperd died:"; tail -20 "$tmp/mk/daemon.log"; exit 1; }
        [ $(($(date +%s) - start)) -lt 600 ] || { echo "start-up did not finish"; exit 1; }
        sleep 1
done
echo "modelkeeperd: all $models models watched after $(($(date +%s) - start)) s (start-up: one reconcile job per model)"
sleep $((2 * interval))
if [ "${PROFILE:-0}" = 1 ] && command -v perf >/dev/null; then
        perf record -q -F 999 -g -p "$mk" -o "$tmp/perf.data" -- sleep "$duration" 2>/dev/null &
        perfpid=$!
fi
read -r _ mk_cpu mk_rss mk_hwm mk_anon mk_ins < <(measure modelkeeperd "$mk")
if [ -n "${perfpid:-}" ]; then
        wait "$perfpid" || true
        perf report -i "$tmp/perf.data" --no-children --sort ${PERF_SORT:-sym} --percent-limit 1 --stdio -g none 2>/dev/null |
                grep -v '^#' | grep -v '^$' | head -40
fi
scrapes=$(awk '/^modelkeeper_scrapes_total/ { print $2 }' "$tmp/mk/modelkeeper.prom")
errors=$(awk '/^modelkeeper_scrape_errors_total/ { s += $2 } END { print s }' "$tmp/mk/modelkeeper.prom")
series=$(awk '/^modelkeeper_stored_series/ { print $2 }' "$tmp/mk/modelkeeper.prom")
kill "$mk"
wait "$mk" 2>/dev/null || true
report modelkeeperd "$mk_cpu" "$mk_rss" "$mk_hwm" "$mk_anon" "$mk_ins"
echo "               scrapes $scrapes, failed $errors, stored series $series (of $((models * 80)) exposed)"
grep -E 'WARN|ERROR' "$tmp/mk/daemon.log" | head -5 || true

# --- Prometheus --------------------------------------------------------------------------------
if [ "$peer" = 1 ] && command -v prometheus >/dev/null; then
        pport=$(free_port)
        mkdir -p "$tmp/prom"
        $python - "$tmp/prom" "$models" "$port" "$interval" <<'EOF'
import sys
d, n, port, every = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
with open(f"{d}/prometheus.yml", "w") as f:
    f.write(f"global: {{scrape_interval: {every}s, evaluation_interval: {every}s, scrape_timeout: {every}s}}\n")
    f.write(f"rule_files: [{d}/rules.yaml]\n")
    f.write("scrape_configs:\n")
    for i in range(n):
        f.write(f"  - job_name: m{i:04d}\n    metrics_path: /metrics/m{i:04d}\n")
        f.write(f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n")
with open(f"{d}/rules.yaml", "w") as f:
    f.write("""groups:
  - name: models
    rules:
      - alert: error-rate
        expr: sum by (job) (rate(request_failure_total[1m])) / (sum by (job) (rate(request_success_total[1m])) + sum by (job) (rate(request_failure_total[1m]))) > 0.05
        for: 2m
      - alert: latency
        expr: histogram_quantile(0.99, sum by (job, le) (rate(request_duration_seconds_bucket[5m]))) > 2
        for: 5m
      - alert: memory
        expr: process_resident_memory_bytes > 6 * 1024 * 1024 * 1024
        for: 5m
""")
EOF
        prometheus --config.file="$tmp/prom/prometheus.yml" --storage.tsdb.path="$tmp/prom/data" \
                --web.listen-address="127.0.0.1:$pport" --log.level=warn > "$tmp/prom/log" 2>&1 &
        pr=$!
        pids+=($pr)
        for _ in $(seq 100); do curl -sf "http://127.0.0.1:$pport/-/ready" >/dev/null && break; sleep 0.2; done
        sleep $((2 * interval))
        read -r _ pr_cpu pr_rss pr_hwm pr_anon pr_ins < <(measure prometheus "$pr")
        up=$(curl -s "http://127.0.0.1:$pport/api/v1/query?query=count(up==1)" | $python -c \
                'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)')
        kill "$pr"
        wait "$pr" 2>/dev/null || true
        report prometheus "$pr_cpu" "$pr_rss" "$pr_hwm" "$pr_anon" "$pr_ins"
        echo "               targets up: $up of $models (stores every series)"
        printf 'ratio modelkeeperd/prometheus: CPU %.2f, RSS %.2f\n' "$(echo "$mk_cpu / $pr_cpu" | bc -l)" \
                "$(echo "$mk_rss / $pr_rss" | bc -l)"
fi
printf 'targets: CPU <= 3 %%: %s; RSS <= 16 MiB: %s\n' \
        "$([ "$(echo "$mk_cpu <= 3" | bc -l)" = 1 ] && echo met || echo MISSED)" \
        "$([ "$mk_rss" -le 16384 ] && echo met || echo MISSED)"
