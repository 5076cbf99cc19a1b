#!/usr/bin/env bash
# Cluster benchmark (not a test): one run on one machine starts etcd, three storage nodes (n1..n3 on
# 127.0.0.2..4) and a storage-less node (n5 on 127.0.0.6), then measures
#   1. fio (run.sh's four jobs) on ext4 over a native loop device and over repl=1/2/3 volumes on n1;
#   2. failover: kill -9 of the attaching node n5 -> first acknowledged write after re-attaching on n1;
#   3. resync: a returning replica node copies what it missed; MB/s against the disk's own speed.
#
# usage (root): bench/cluster.sh [SECONDS_PER_JOB=15]
# Environment: TRIALS (failover trials, default 10), PHASES (default "fio failover resync"),
# RESYNC_MIB (written while n3 is away, default 4096; the resync volume is that rounded up to GiB), STOWAGE_BENCH_DIR (default
# /var/tmp/stowage-cluster-bench), FUSE_THREADS (default 16), LOOP_DIO (on|off, default on),
# STOWAGE_JAVA_OPTS (the nodes' JVM flags), CLI_JAVA_OPTS (the `stowage csi` calls' JVM flags), RAMP (fio's
# ramp time in seconds, default 2).
set -Eeuo pipefail
runtime=${1:-15}
trials=${TRIALS:-10}
phases=${PHASES:-fio failover resync}
resync_mib=${RESYNC_MIB:-4096}
home="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir=${STOWAGE_BENCH_DIR:-/var/tmp/stowage-cluster-bench}
gib=2
[[ $(id -u) == 0 ]] || { echo "cluster bench: run as root" >&2; exit 1; }
for tool in fio etcd curl python3 losetup mkfs.ext4; do
  command -v "$tool" >/dev/null || { echo "cluster bench: $tool missing; run bin/setup" >&2; exit 1; }
done
[[ $runtime =~ ^[1-9][0-9]*$ ]] || { echo "cluster bench: SECONDS_PER_JOB '$runtime' is not a positive number" >&2; exit 2; }
[[ $trials =~ ^[1-9][0-9]*$ ]] || { echo "cluster bench: TRIALS '$trials' is not a positive number" >&2; exit 2; }
[[ $resync_mib =~ ^[1-9][0-9]*$ ]] && (( resync_mib <= 16384 )) \
  || { echo "cluster bench: RESYNC_MIB '$resync_mib' must be 1..16384" >&2; exit 2; }

# The `stowage csi` calls are short-lived JVMs: start them as fast as possible (they are part of the
# failover time). The nodes get the caller's STOWAGE_JAVA_OPTS, if any.
cli_java_opts=${CLI_JAVA_OPTS:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC}
declare -A ip=([n1]=127.0.0.2 [n2]=127.0.0.3 [n3]=127.0.0.4 [n5]=127.0.0.6)
declare -A pid=()
etcd_pid= etcd_url= writer_pid= native_loop=
summary=()

log() { echo "[$(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
csi() { local n=$1; shift; STOWAGE_JAVA_OPTS=$cli_java_opts timeout 300 "$home/bin/stowage" csi --endpoint "unix://$dir/$n/csi.sock" "$@"; }
ctl() { local n=$1; shift; timeout 120 "$home/bin/stowctl" --endpoint "${ip[$n]}:7420" "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# Mount points under $1, deepest first.
mounts_under() {
  awk -v p="$1" '$5 == p || index($5, p "/") == 1 { print $5 }' /proc/self/mountinfo \
    | awk '{ print gsub("/", "/"), $0 }' | sort -rn | cut -d' ' -f2-
}
loops_under() {
  losetup --list --noheadings --output NAME,BACK-FILE 2>/dev/null \
    | awk -v p="$1" '{ f = $2; if (f == p || index(f, p "/") == 1) print $1 }'
}
# Lazily unmounts everything under $1 and detaches the loop devices backed by files under it.
release_under() {
  local m l early_loops
  # Loop devices first, while their FUSE backing paths still resolve (after the FUSE mount is gone,
  # losetup shows them backed by "/").
  early_loops=$(loops_under "$1")
  for _ in 1 2 3; do
    while read -r m; do [[ -n $m ]] && { timeout 30 umount "$m" 2>/dev/null || umount -l "$m" || true; }; done < <(mounts_under "$1")
    while read -r l; do [[ -n $l ]] && { losetup -d "$l" 2>/dev/null || true; }; done < <(loops_under "$1")
    for l in $early_loops; do losetup "$l" >/dev/null 2>&1 && { losetup -d "$l" 2>/dev/null || true; }; done
    [[ -z $(mounts_under "$1") && -z $(loops_under "$1") ]] && return 0
  done
  log "still present under $1: mounts [$(mounts_under "$1" | xargs)] loops [$(loops_under "$1" | xargs)]"
}
# Waits (at most $2 s) for pid $1 to exit after a signal; reaps it when it is our child.
await_exit() {
  local deadline=$(( $(date +%s) + $2 ))
  while kill -0 "$1" 2>/dev/null; do
    (( $(date +%s) < deadline )) || return 1
    sleep 0.1
  done
  wait "$1" 2>/dev/null || true
}
stop_pid() {  # SIGTERM, then SIGKILL after 30 s
  kill "$1" 2>/dev/null || return 0
  await_exit "$1" 30 || { kill -9 "$1" 2>/dev/null; await_exit "$1" 30 || log "pid $1 does not exit"; }
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  log "cleaning up $dir"
  [[ -n $writer_pid ]] && kill -9 -- "-$writer_pid" 2>/dev/null && await_exit "$writer_pid" 30
  # The file systems first, while the nodes still serve them, then the nodes, then what they left.
  release_under "$dir"
  for n in "${!pid[@]}"; do stop_pid "${pid[$n]}"; done
  release_under "$dir"
  [[ -n $etcd_pid ]] && stop_pid "$etcd_pid"
  if [[ -z $(mounts_under "$dir") && -z $(loops_under "$dir") ]]; then
    rm -rf --one-file-system "$dir"
  else
    log "left $dir in place: something under it is still mounted"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT TERM

release_under "$dir"
rm -rf --one-file-system "$dir"
mkdir -p "$dir"
log "building if needed"
"$home/bin/stowage" version >/dev/null

# ---- cluster ----
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
start_etcd() {
  local cp pp
  cp=$(free_port); pp=$(free_port)
  etcd_url="http://127.0.0.1:$cp"
  etcd --name bench --data-dir "$dir/etcd" --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
       --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
       --initial-cluster "bench=http://127.0.0.1:$pp" --initial-cluster-state new > "$dir/etcd.log" 2>&1 &
  etcd_pid=$!
  for _ in $(seq 1 300); do
    kill -0 "$etcd_pid" 2>/dev/null || die "etcd exited; see $dir/etcd.log: $(tail -5 "$dir/etcd.log")"
    curl -s --max-time 2 "$etcd_url/health" 2>/dev/null | grep -q '"health":"true"' && { log "etcd up at $etcd_url"; return; }
    sleep 0.2
  done
  die "etcd not healthy within 60 s; see $dir/etcd.log"
}

# Starts node $1 and waits until its CSI Probe answers ready (a restart after a crash first waits for
# the dead process's lease to expire: the node does that itself).
start_node() {
  local n=$1 sock="$dir/$1/csi.sock"
  local args=(node --node-id "$n" --data-dir "$dir/$n/data" --csi-endpoint "unix://$sock" --etcd "$etcd_url"
              --api-listen "${ip[$n]}:7420" --zone "zone-$n" --replica-replace-timeout 86400
              --fuse-threads "${FUSE_THREADS:-16}" --loop-direct-io "${LOOP_DIO:-on}")
  if [[ $n == n5 ]]; then args+=(--storageless --listen "${ip[$n]}:7498"); else args+=(--listen "${ip[$n]}:0"); fi
  mkdir -p "$dir/$n"
  rm -f "$sock"
  "$home/bin/stowage" "${args[@]}" >> "$dir/$n.log" 2>&1 &
  pid[$n]=$!
  disown "${pid[$n]}"  # no "Killed" job notice when it is killed on purpose
  local deadline=$(( $(date +%s) + 180 ))
  while (( $(date +%s) < deadline )); do
    kill -0 "${pid[$n]}" 2>/dev/null || { unset "pid[$n]"; die "node $n exited; last lines of $dir/$n.log:
$(tail -20 "$dir/$n.log")"; }
    [[ -S $sock ]] && [[ $(csi "$n" probe 2>/dev/null) == true ]] && return 0
    sleep 0.2
  done
  die "node $n not ready within 180 s; see $dir/$n.log"
}
kill9_node() {
  kill -9 "${pid[$1]}" 2>/dev/null || true
  await_exit "${pid[$1]}" 30 || die "node $1 (pid ${pid[$1]}) survives SIGKILL"
  unset "pid[$1]"
}

# Creates volume $1 (repl $2, extra stowctl flags after) through n1's management API; prints its id.
create_volume() {
  local name=$1 repl=$2; shift 2
  ctl n1 volume create "$name" --size "${VOLUME_GIB:-$gib}GiB" --repl "$repl" "$@" >/dev/null \
    || die "stowctl volume create $name failed"
  ctl n1 -o json volume inspect "$name" | json 'd["id"]'
}
replica_nodes() { ctl n1 -o json volume inspect "$1" | json '",".join(r["nodeId"] for r in d["replicas"])'; }

# Publishes volume $2 to node $1 (retrying while the previous attachment's node is not known dead yet,
# FAILED_PRECONDITION), stages and publishes it as $3 (mount|block); prints the target path.
attach() {
  local n=$1 id=$2 kind=$3 err deadline=$(( $(date +%s) + 120 ))
  local staging="$dir/$n/staging-$id" target="$dir/$n/publish-$id/target"
  while ! err=$(csi "$n" controller-publish "$id" "$n" "$kind" 2>&1 >/dev/null); do
    [[ $err == *FAILED_PRECONDITION* ]] || die "controller-publish $id on $n: $err"
    (( $(date +%s) < deadline )) || die "controller-publish $id on $n still refused after 120 s: $err"
  done
  echo "$(now_ms)" > "$dir/published-at"
  csi "$n" stage "$id" "$staging" "$kind" ${4:-} || die "stage $id on $n failed"
  csi "$n" publish "$id" "$staging" "$target" "$kind" || die "publish $id on $n failed"
  echo "$target"
}
detach() {
  local n=$1 id=$2
  csi "$n" unpublish "$id" "$dir/$n/publish-$id/target" || die "unpublish $id on $n failed"
  csi "$n" unstage "$id" "$dir/$n/staging-$id" || die "unstage $id on $n failed"
  csi "$n" controller-unpublish "$id" "$n" || die "controller-unpublish $id from $n failed"
}

start_etcd
for n in n1 n2 n3 n5; do start_node "$n"; log "node $n up (pid ${pid[$n]}, ${ip[$n]})"; done

# ---- 1. fio: native vs repl=1/2/3 ----
jobs=(
  "randwrite-4k-qd32 randwrite 4k 32"
  "randread-4k-qd32 randread 4k 32"
  "seqwrite-1m-qd8 write 1m 8"
  "randwrite-4k-qd1-fdatasync randwrite 4k 1 --fdatasync=1"
)
# Runs every job on a prefilled 1 GiB file in directory $1; writes "name value unit" lines to $2;
# the QD1 fdatasync job also gives "qd1-latency-us MEAN us" (write + fdatasync, per operation).
run_jobs() {
  local mnt=$1 out=$2 file=$1/fio.dat
  : > "$out"
  timeout 600 fio --name=prefill --filename="$file" --rw=write --bs=1m --size=1g --direct=1 --ioengine=libaio \
      --iodepth=8 --output-format=terse >/dev/null || die "fio prefill on $mnt failed"
  for j in "${jobs[@]}"; do
    read -r name rw bs qd extra <<<"$j"
    [[ -z ${ONLY:-} || " $ONLY " == *" $name "* ]] || continue
    timeout $(( runtime + 300 )) fio --name="$name" --filename="$file" --rw="$rw" --bs="$bs" --iodepth="$qd" \
        --size=1g --direct=1 --ioengine=libaio --time_based --runtime="$runtime" --ramp_time="${RAMP:-2}" --group_reporting \
        --output-format=json ${extra:-} > "$out.$name.json" || die "fio $name on $mnt failed"
    python3 - "$out.$name.json" "$name" "$rw" >> "$out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["jobs"][0]
side = "read" if "read" in sys.argv[3] else "write"
iops = r[side]["iops"]; bw = r[side]["bw_bytes"] / 1e6
if sys.argv[2].startswith("seq"):
    print(sys.argv[2], f"{bw:.0f}", "MB/s")
else:
    print(sys.argv[2], f"{iops:.0f}", "IOPS")
if "qd1" in sys.argv[2]:
    # fio reports the write's completion latency and the fdatasync's latency separately.
    lat = r[side]["clat_ns"]["mean"] + r.get("sync", {}).get("lat_ns", {}).get("mean", 0)
    print("qd1-fdatasync-latency", f"{lat / 1e3:.0f}", "us")
    print("qd1-write-latency", f"{r[side]['clat_ns']['mean'] / 1e3:.0f}", "us")
    print("qd1-sync-latency", f"{r.get('sync', {}).get('lat_ns', {}).get('mean', 0) / 1e3:.0f}", "us")
PY
  done
  cat "$out" >&2
}

phase_fio() {
  log "== fio: native ext4 on a loop device (direct I/O) on a ${gib} GiB file"
  truncate -s "$((gib << 30))" "$dir/native.img"
  native_loop=$(losetup --find --show --direct-io=on "$dir/native.img")
  mkfs.ext4 -q -F "$native_loop"
  mkdir -p "$dir/native-mnt" && mount "$native_loop" "$dir/native-mnt"
  run_jobs "$dir/native-mnt" "$dir/fio-native.txt"
  umount "$dir/native-mnt"; losetup -d "$native_loop"; native_loop=
  local placed=()
  for repl in 1 2 3; do
    local id target
    id=$(create_volume "bench-r$repl" "$repl" --fs ext4)
    placed+=("repl=$repl on $(replica_nodes "$id")")
    log "== fio: ext4 on volume $id, repl=$repl (replicas on $(replica_nodes "$id")), attached on n1"
    target=$(attach n1 "$id" mount ext4)
    run_jobs "$target" "$dir/fio-r$repl.txt"
    detach n1 "$id"
    ctl n1 volume delete "$id" >/dev/null || die "stowctl volume delete $id failed"
  done
  summary+=("$(python3 - "$dir"/fio-native.txt "$dir"/fio-r1.txt "$dir"/fio-r2.txt "$dir"/fio-r3.txt <<'PY'
import sys
cols = ["native", "repl=1", "repl=2", "repl=3"]
data = [{l.split()[0]: (float(l.split()[1]), l.split()[2]) for l in open(p)} for p in sys.argv[1:]]
print(f"{'job':30} {'native':>12}" + "".join(f" {c:>16}" for c in cols[1:]))
for k, (v, unit) in data[0].items():
    if k.endswith("latency"):
        continue
    row = f"{k:30} {v:>7.0f} {unit:<4}"
    for d in data[1:]:
        s = d[k][0]
        row += f" {s:>7.0f} {s / v:>5.2f}x  "
    print(row + f" ({unit})")
lat = "qd1-fdatasync-latency"
if lat in data[0]:
    print(f"QD1 write+fdatasync mean latency: native {data[0][lat][0]:.0f} us, repl=3 {data[3][lat][0]:.0f} us "
          f"({data[3][lat][0] / data[0][lat][0]:.2f}x)")
PY
)")
  summary+=("replica placement: ${placed[*]}")
}

# ---- 2. failover of the attaching node ----
phase_failover() {
  local id times=() published=() t
  id=$(create_volume bench-failover 3)
  log "== failover: repl=3 block volume $id (replicas on $(replica_nodes "$id")), $trials trials: kill -9 n5, attach on n1"
  head -c 4096 /dev/urandom > "$dir/failover.blk"
  local probe_ms; t=$(now_ms); csi n1 probe >/dev/null; probe_ms=$(( $(now_ms) - t ))
  for trial in $(seq 1 "$trials"); do
    local dev
    dev=$(attach n5 "$id" block)
    # The writer, in its own process group: 4 KiB writes with O_DIRECT|O_DSYNC, counting the
    # acknowledged ones, until the node under it dies.
    rm -f "$dir/writer.acks"
    setsid bash -c 'i=0; while timeout 30 dd if="$1" of="$2" bs=4k count=1 seek=$(( i % 16384 )) \
        oflag=direct,dsync conv=notrunc status=none; do i=$(( i + 1 )); echo "$i" > "$3"; done' \
      writer "$dir/failover.blk" "$dev" "$dir/writer.acks" > "$dir/writer.log" 2>&1 &
    writer_pid=$!
    disown "$writer_pid"
    local deadline=$(( $(date +%s) + 60 ))
    until [[ $(cat "$dir/writer.acks" 2>/dev/null) -ge 20 ]]; do
      kill -0 "$writer_pid" 2>/dev/null || die "the writer on n5 stopped before the kill: $(tail -5 "$dir/writer.log")"
      (( $(date +%s) < deadline )) || die "the writer on n5 did not get 20 writes acknowledged in 60 s"
      sleep 0.1
    done
    local t0; t0=$(now_ms)
    kill9_node n5
    kill -9 -- "-$writer_pid" 2>/dev/null || true  # it may have failed already
    await_exit "$writer_pid" 60 || die "the writer (pid $writer_pid) hangs"
    writer_pid=
    release_under "$dir/n5"
    local dev1; dev1=$(attach n1 "$id" block)
    timeout 60 dd if="$dir/failover.blk" of="$dev1" bs=4k count=1 seek=$(( trial * 7 )) oflag=direct,dsync \
        conv=notrunc status=none || die "the first write after failover failed"
    t=$(( $(now_ms) - t0 ))
    times+=("$t")
    published+=("$(( $(cat "$dir/published-at") - t0 ))")
    log "trial $trial: first acknowledged write on n1 ${t} ms after the kill of n5 (ControllerPublish accepted after ${published[-1]} ms)"
    start_node n5
    detach n1 "$id"
  done
  summary+=("$(python3 - "$probe_ms" "${times[*]}" "${published[*]}" <<'PY'
import sys
probe = int(sys.argv[1])
def stats(xs):
    t = sorted(int(x) for x in xs.split())
    p50 = t[(len(t) - 1) // 2] if len(t) % 2 else (t[len(t) // 2 - 1] + t[len(t) // 2]) / 2
    return len(t), p50, t[-1]
n, p50, mx = stats(sys.argv[2])
_, pp50, pmx = stats(sys.argv[3])
print(f"failover (kill -9 of n5 -> first 4 KiB write+dsync acknowledged on n1), {n} trials: "
      f"p50 {p50:.0f} ms, max {mx} ms")
print(f"  of which until ControllerPublish on n1 was accepted: p50 {pp50:.0f} ms, max {pmx} ms (lease TTL 3 s)")
print(f"  includes >= 3 'stowage csi' CLI calls, one JVM each: ~{probe} ms per call on this machine")
PY
)")
}

# ---- 3. resync throughput of a returning replica ----
# Milliseconds to write as many bytes as a resync copies, sequentially past the page cache.
disk_speed_ms() {
  log "== resync: the disk's own sequential write speed (dd ${resync_mib} MiB, bs=1M, oflag=direct, fsync) on $(df --output=target "$dir" | tail -1)"
  local d0; d0=$(now_ms)
  timeout 900 dd if=/dev/zero of="$dir/disk-speed.dat" bs=1M count="$resync_mib" oflag=direct conv=fsync status=none \
    || die "measuring the disk's write speed failed"
  echo $(( $(now_ms) - d0 ))
  rm -f "$dir/disk-speed.dat"
}

phase_resync() {
  local id dev
  # At least 2 GiB, and large enough for what is written while n3 is away.
  id=$(VOLUME_GIB=$(( resync_mib > 2048 ? (resync_mib + 1023) / 1024 : 2 )) create_volume bench-resync 3)
  log "== resync: repl=3 block volume $id (replicas on $(replica_nodes "$id")), attached on n1; n3 away for ${resync_mib} MiB"
  dev=$(attach n1 "$id" block)
  # The disk's speed moves by up to a third within minutes here: measure it before and after.
  local disk_before_ms; disk_before_ms=$(disk_speed_ms)
  kill9_node n3
  # O_DIRECT writes, then an fsync of the device: a flush that every healthy replica makes durable.
  timeout 900 dd if=/dev/zero of="$dev" bs=1M count="$resync_mib" oflag=direct conv=notrunc,fsync status=none \
    || die "writing while n3 is away failed"
  local state; state=$(ctl n1 -o json volume inspect "$id" | json '" ".join(r["nodeId"] + "=" + r["state"] for r in d["replicas"])')
  log "written ${resync_mib} MiB while n3 is away; replicas: $state"
  local t0; t0=$(now_ms)
  start_node n3
  local ready; ready=$(now_ms)
  local deadline=$(( $(date +%s) + 900 ))
  # Wait on n1's log line, not by polling the CLI: each CLI call is a JVM start, and polling twice a
  # second took a third of this 2-core machine's CPU away from the copy being measured.
  until grep -q "volume $id: replica on node n3 resynced" "$dir/n1.log"; do
    (( $(date +%s) < deadline )) || die "no resync of $id logged by n1 900 s after n3 returned"
    sleep 0.2
  done
  while :; do
    state=$(ctl n1 -o json volume inspect "$id" | json '" ".join(r["nodeId"] + "=" + r["state"] for r in d["replicas"])') \
      || die "stowctl volume inspect $id failed"
    [[ $state != *STALE* && $state != *REBUILDING* && $state =~ ^([a-z0-9]+=HEALTHY ?)+$ ]] && break
    (( $(date +%s) < deadline )) || die "volume $id not healthy 900 s after n3 returned: $state"
    sleep 0.5
  done
  local healthy; healthy=$(now_ms)
  detach n1 "$id"
  local disk_ms; disk_ms=$(disk_speed_ms)
  summary+=("$(python3 - "$dir/n1.log" "$id" "$(( ready - t0 ))" "$(( healthy - ready ))" "$disk_before_ms" "$disk_ms" "$resync_mib" <<'PY'
import re, sys
from datetime import datetime
log, vid, start_ms, heal_ms, disk_before_ms, disk_after_ms, disk_mib = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
speeds = [(disk_mib << 20) / (ms / 1e3) / 1e6 for ms in (disk_before_ms, disk_after_ms)]
started = done = copied = None
quarters = []  # (time, bytes copied) at each 25% the resync logs
for line in open(log, errors="replace"):
    ts = line.split(" ", 1)[0]
    m = re.search(rf"volume {re.escape(vid)}: resync of node n3 at (\d+)%, (\d+) bytes copied", line)
    if m:
        quarters.append((datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f%z"), int(m.group(2))))
    if f"volume {vid}: resync of node n3 from node" in line and "started" in line:
        started = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f%z")
    m = re.search(rf"volume {re.escape(vid)}: replica on node n3 resynced, (\d+) bytes copied", line)
    if m:
        done = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f%z"); copied = int(m.group(1))
disk = sum(speeds) / 2
if copied is None:
    print(f"resync: no 'replica on node n3 resynced' line for {vid} in {log}")
    sys.exit(0)
total = start_ms + heal_ms
print(f"resync of n3: {copied / 1e6:.0f} MB copied; volume healthy {total} ms after n3's restart began "
      f"(JVM start, lease wait, resync; by inspect polling) = {copied / (total / 1e3) / 1e6:.0f} MB/s")
if started and done and done > started:
    secs = (done - started).total_seconds()
    copy = copied / secs / 1e6
    print(f"  copy phase in n1's log: {secs * 1e3:.0f} ms = {copy:.0f} MB/s; disk sequential write {disk:.0f} MB/s "
          f"(mean of {speeds[0]:.0f} before and {speeds[1]:.0f} after); ratio {copy / disk:.2f}x "
          f"({copy / max(speeds):.2f}-{copy / min(speeds):.2f}x against either)")
    if quarters and done > quarters[0][0]:
        # The first quarter includes the returning JVM's start-up (its JIT compilers took about a
        # third of this machine's CPU then); from there on the copy runs at its steady rate.
        t, b = quarters[0]
        rest = (copied - b) / (done - t).total_seconds() / 1e6
        print(f"  after the first quarter ({b / 1e6:.0f} MB in {(t - started).total_seconds() * 1e3:.0f} ms): "
              f"{rest:.0f} MB/s; ratio {rest / disk:.2f}x")
else:
    wall = copied / ((start_ms + heal_ms) / 1e3) / 1e6
    print(f"  (no resync start line in n1's log) disk sequential write {disk:.0f} MB/s; ratio (polling) {wall / disk:.2f}x")
PY
)")
}

for p in $phases; do
  case $p in
    fio) phase_fio ;;
    failover) phase_failover ;;
    resync) phase_resync ;;
    *) die "unknown phase '$p' in PHASES (fio failover resync)" ;;
  esac
done

echo "== results (${runtime}s per fio job; $(nproc) cores; kernel $(uname -r); bench dir on $(df --output=source "$dir" | tail -1))"
for s in "${summary[@]}"; do echo "$s"; done
