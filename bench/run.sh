#!/usr/bin/env bash
# Benchmark (not a test): fio on ext4 over (a) a loop device on a plain file and (b) a Stowage
# volume staged and published through CSI, same size, in one run; prints both and their ratio.
#
# usage (root): bench/run.sh [SECONDS_PER_JOB=15] [VOLUME_GIB=2]
# Environment: STOWAGE_BENCH_DIR (default /var/tmp/stowage-bench), FUSE_THREADS (default 16),
# LOOP_DIO (on|off, default on: the Stowage volume's loop device uses direct I/O on the FUSE file).
set -euo pipefail
runtime=${1:-15}
gib=${2:-2}
home="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir=${STOWAGE_BENCH_DIR:-/var/tmp/stowage-bench}
size=$((gib << 30))
[[ $(id -u) == 0 ]] || { echo "bench: run as root" >&2; exit 1; }
command -v fio >/dev/null || { echo "bench: fio missing; run bin/setup" >&2; exit 1; }

node_pid= native_loop= volume_id= node_id=
sock="$dir/csi.sock"
csi() { "$home/bin/stowage" csi --endpoint "unix://$sock" "$@"; }
cleanup() {
  set +e
  mountpoint -q "$dir/native-mnt" && umount "$dir/native-mnt"
  [[ -n $native_loop ]] && losetup -d "$native_loop"
  if [[ -n $volume_id ]]; then
    csi unpublish "$volume_id" "$dir/target" >/dev/null
    csi unstage "$volume_id" "$dir/staging" >/dev/null
    csi controller-unpublish "$volume_id" "$node_id" >/dev/null
    csi delete-volume "$volume_id" >/dev/null
  fi
  [[ -n $node_pid ]] && kill "$node_pid" && wait "$node_pid" 2>/dev/null
  rm -rf --one-file-system "$dir"
}
trap cleanup EXIT
rm -rf --one-file-system "$dir"; mkdir -p "$dir"

# name rw bs iodepth extra
jobs=(
  "randwrite-4k-qd32 randwrite 4k 32"
  "randread-4k-qd32 randread 4k 32"
  "seqwrite-1m-qd8 write 1m 8"
  "randwrite-4k-qd1-fdatasync randwrite 4k 1 --fdatasync=1"
)

# Runs every job on a prefilled 1 GiB file in directory $1; prints "name value unit" lines.
run_jobs() {
  local mnt=$1 file=$1/fio.dat
  fio --name=prefill --filename="$file" --rw=write --bs=1m --size=1g --direct=1 --ioengine=libaio \
      --iodepth=8 --output-format=terse >/dev/null
  for j in "${jobs[@]}"; do
    read -r name rw bs qd extra <<<"$j"
    [[ -z ${ONLY:-} || " $ONLY " == *" $name "* ]] || continue
    fio --name="$name" --filename="$file" --rw="$rw" --bs="$bs" --iodepth="$qd" --size=1g --direct=1 \
        --ioengine=libaio --time_based --runtime="$runtime" --ramp_time=2 --group_reporting \
        --output-format=json ${extra:-} > "$dir/$name.json"
    python3 - "$dir/$name.json" "$name" "$rw" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["jobs"][0]
side = "read" if "read" in sys.argv[3] else "write"
iops = r[side]["iops"]; bw = r[side]["bw_bytes"] / 1e6
lat = r[side].get("clat_ns", {}).get("mean", 0) / 1e3
if sys.argv[2].startswith("seq"):
    print(sys.argv[2], f"{bw:.0f}", "MB/s")
elif "qd1" in sys.argv[2]:
    print(sys.argv[2], f"{iops:.0f}", "IOPS")
else:
    print(sys.argv[2], f"{iops:.0f}", "IOPS")
PY
  done
}

echo "== (a) native: ext4 on a loop device (direct I/O) on a ${gib} GiB file in $dir"
truncate -s "$size" "$dir/native.img"
native_loop=$(losetup --find --show --direct-io=on "$dir/native.img")
mkfs.ext4 -q -F "$native_loop"
mkdir -p "$dir/native-mnt" && mount "$native_loop" "$dir/native-mnt"
run_jobs "$dir/native-mnt" | tee "$dir/native.txt"
umount "$dir/native-mnt"; losetup -d "$native_loop"; native_loop=

echo "== (b) stowage: ext4 on a ${gib} GiB volume, repl=1, through NodeStage/NodePublish (loop direct I/O ${LOOP_DIO:-on})"
"$home/bin/stowage" version >/dev/null   # builds on first use
"$home/bin/stowage" node --data-dir "$dir/data" --csi-endpoint "unix://$sock" --node-id bench \
    --fuse-threads "${FUSE_THREADS:-16}" --loop-direct-io "${LOOP_DIO:-on}" --api-listen off > "$dir/node.log" 2>&1 &
node_pid=$!
for _ in $(seq 1 300); do [[ -S $sock ]] && csi probe >/dev/null 2>&1 && break; sleep 0.2; done
node_id=$(csi node-id)
volume_id=$(csi create-volume bench-volume "$size" mount ext4)
csi controller-publish "$volume_id" "$node_id" mount ext4
csi stage "$volume_id" "$dir/staging" mount ext4
csi publish "$volume_id" "$dir/staging" "$dir/target" mount
run_jobs "$dir/target" | tee "$dir/stowage.txt"

echo "== results (${runtime}s per job; $(nproc) cores; kernel $(uname -r))"
python3 - "$dir/native.txt" "$dir/stowage.txt" <<'PY'
import sys
a = {l.split()[0]: (float(l.split()[1]), l.split()[2]) for l in open(sys.argv[1])}
b = {l.split()[0]: (float(l.split()[1]), l.split()[2]) for l in open(sys.argv[2])}
print(f"{'job':30} {'native':>12} {'stowage':>12} {'ratio':>7}")
for k, (v, unit) in a.items():
    s = b[k][0]
    print(f"{k:30} {v:>9.0f} {unit:<4} {s:>7.0f} {unit:<4} {s / v:>6.2f}x")
PY
