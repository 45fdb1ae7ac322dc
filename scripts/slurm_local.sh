#!/usr/bin/env bash
# A real Slurm test: starts a one-node Slurm cluster here (munged, slurmctld, slurmd as root, in
# a temporary folder, on ports of its own), submits `vggfeat extract --shard auto` as a job array
# of 3 tasks on real Caltech-101 images -- each task sees the data at a different path, as nodes
# with their own mounts do -- then `merge` as a job that depends on the array, and compares the
# merged store with a single-process run: ids identical, descriptors bit for bit. Stops the
# daemons it started by their process ids. Installs Debian's slurm-wlm and munge when missing.
#
#   bash scripts/slurm_local.sh     # about a minute after the build; needs root
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
SHARED=${SHARED:-$REPO/../shared}
if [ -z "${VGGFEAT:-}" ]; then cargo build --release -q; fi
BIN=${VGGFEAT:-$REPO/target/release/vggfeat}
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
[ "$(id -u)" = 0 ] || { echo "slurm_local: run as root (the daemons start as root)" >&2; exit 1; }

WORK=$(mktemp -d -t vggfeat-slurm.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK"/{munge,etc,state,spool,logs,shards}
chmod 700 "$WORK/munge"

# munge: a key of our own, a socket of our own.
mungekey --create --keyfile="$WORK/munge/munge.key" --force
chmod 400 "$WORK/munge/munge.key"
SOCK="$WORK/munge/munge.socket"
munged --foreground --force --key-file="$WORK/munge/munge.key" --socket="$SOCK" \
  --pid-file="$WORK/munge/munged.pid" --log-file="$WORK/munge/munged.log" \
  --seed-file="$WORK/munge/munge.seed" > "$WORK/munge/munged.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done

HOST=$(hostname -s)
CPUS=$(nproc)
cat > "$WORK/etc/slurm.conf" <<CONF
ClusterName=vggfeat-local
SlurmctldHost=$HOST
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$SOCK
CredType=cred/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/logs/slurmctld.log
SlurmdLogFile=$WORK/logs/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
NodeName=$HOST CPUs=$CPUS RealMemory=2000 State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$WORK/etc/slurm.conf"
T0=$(date +%s)
slurmctld -D -f "$SLURM_CONF" > "$WORK/logs/slurmctld.out" 2>&1 &
PIDS+=($!)
slurmd -D -f "$SLURM_CONF" > "$WORK/logs/slurmd.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 120); do
  sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)' && break
  sleep 0.5
done
sinfo
echo "slurm_local: cluster up in $(( $(date +%s) - T0 )) s"

# The data: the first 5 images of 4 Caltech-101 classes, copied to a different path per "node".
SRC="$SHARED/datasets/caltech101/101_ObjectCategories"
for node in 0 1 2; do
  for c in Faces Leopards airplanes watch; do
    mkdir -p "$WORK/mnt/node$node/caltech/$c"
    mapfile -t files < <(ls "$SRC/$c" | sort)
    for f in "${files[@]:0:5}"; do cp "$SRC/$c/$f" "$WORK/mnt/node$node/caltech/$c/"; done
  done
done
WEIGHTS="$SHARED/weights/vgg16-conv-hed/vgg16_conv_hed.safetensors"
ARGS=(--scales 224 --layer pool5 -w "$WEIGHTS" --threads 1)

cat > "$WORK/extract.sbatch" <<JOB
#!/bin/bash
#SBATCH --array=0-2
#SBATCH --cpus-per-task=1
#SBATCH --output=$WORK/logs/extract-%a.log
# Each task sees the data at its own path (node-local mounts differ on a real cluster).
exec "$BIN" extract "$WORK/mnt/node\${SLURM_ARRAY_TASK_ID}/caltech" --shard auto \
  ${ARGS[*]} -o "$WORK/shards/s\${SLURM_ARRAY_TASK_ID}" --progress-interval 2
JOB
JOB=$(sbatch --parsable "$WORK/extract.sbatch")
echo "slurm_local: array job $JOB submitted"
sbatch --wait --dependency="afterok:$JOB" --kill-on-invalid-dep=yes --output="$WORK/logs/merge.log" \
  --wrap "\"$BIN\" merge $WORK/shards/s0 $WORK/shards/s1 $WORK/shards/s2 -o $WORK/merged" >/dev/null \
  || { for a in 0 1 2; do cat "$WORK/logs/extract-$a.log"; done; echo "slurm_local: FAIL: the job array or the merge failed" >&2; exit 1; }
for a in 0 1 2; do echo "--- extract task $a"; cat "$WORK/logs/extract-$a.log"; done
echo "--- merge"; cat "$WORK/logs/merge.log"

# The single-process run, and the comparison.
"$BIN" extract "$WORK/mnt/node0/caltech" "${ARGS[@]}" -o "$WORK/single" -q
"$BIN" export "$WORK/merged" --aggregate stack --csv "$WORK/merged.csv" 2>/dev/null
"$BIN" export "$WORK/single" --aggregate stack --csv "$WORK/single.csv" 2>/dev/null
for s in 0 1 2; do python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print("shard", m["input"]["shard"], "root", m["input"]["root"])' "$WORK/shards/s$s/manifest.json"; done
N=$(($(wc -l < "$WORK/single.csv") - 1))
if cmp -s "$WORK/merged.csv" "$WORK/single.csv"; then
  echo "slurm_local: PASS: the merged array job equals the single run ($N images: ids identical, descriptors bit for bit)"
else
  echo "slurm_local: FAIL: the merged store differs from the single run" >&2
  diff <(cut -d, -f1 "$WORK/merged.csv") <(cut -d, -f1 "$WORK/single.csv") | head >&2 || true
  exit 1
fi
