#!/usr/bin/env bash
# The benchmark of issue 7: bgrun side by side with the floor (nohup) and its
# peers (nq, task-spooler), all measured in the same run, since the machines
# are shared and noisy and only same-run ratios mean something.
#
#   bash bench/run.sh [--quick] [--no-build-time] [--queue-only] [--scale | --scale-only] [--bin DIR]
#
# It installs what it lacks (apt-get: hyperfine, nq, task-spooler, time,
# python3), builds the release binaries, measures in a temporary directory
# (RUN_DIR, NQDIR, TS_SOCKET and TMPDIR all point into it: the real store is
# never touched), prints one Markdown table and writes it, with the date, the
# machine and the versions, to a new file bench/runs/YYYY-MM-DD-HHMM.md (UTC;
# -quick appended for --quick): runs are kept, never overwritten (see
# bench/README.md for filing one). Every figure is a median
# with its min–max. bench/probe.py makes the measurements hyperfine cannot.
# Tools compared in a section take turns in ABBA order (the second half of
# the runs in reverse order), and every section starts after a `sync` once
# the kernel's dirty and writeback pages are under 1 MiB (30 s at most).
#
# --quick: fewer runs, no 10,000-job store, 64 MiB instead of 1 GiB of
# output, no build time (for working on the benchmark itself).
# --no-build-time: skip the clean release build (2 to 6 minutes here).
# --queue-only: only section 8, queues (with --quick: a smoke run of it).
# --scale: add section 9, scale (issue 24), after the others; --scale-only:
# only section 9. It is behind its own switch because at the issue's sizes
# it plants 220,000 job directories and removes them: about 5 minutes here
# (the --after chain stops at SCALE_CHAIN_MAX seconds in any case). With
# --quick its sizes are small (under 2 minutes, debug binaries included). Its
# sizes, each an environment variable (full / --quick):
#   SCALE_SIZES="10000 100000" / "200 1000"  stores of ended jobs, planted
#   SCALE_FILL=10000 / 1000, SCALE_BATCH=50  a store filled N launches at a time
#   SCALE_FLOW=1000 / 200, SCALE_ROUNDS=4 / 2  `true` jobs through 2 slots
#   SCALE_CHAIN=10000 / 200, SCALE_CHAIN_MAX=1200 / 120  an --after chain
#   SCALE_LEGACY=40000 / 1000                the old scripts' file pairs
#   SCALE_RUNS=30 / 10, SCALE_RUNS_BIG=10 / 10  hyperfine runs per listing
#                                            (BIG: 100,000 jobs or more)
# --bin DIR: measure the binaries in DIR (run, runs, runlog, runrm, job)
# and build nothing: for working on the benchmark, with debug binaries.
# pueue is measured beside them where it is installed (not from apt).
#
# Every process it starts carries BGRUN_BENCH_TOKEN in its environment; on
# exit (or Ctrl-C) those, and only those, are killed and the temporary
# directory is removed. On ext4 without a journal, files created within a few
# minutes of mass deletions are slow to create (bench/GAPS.md): leave about
# 6 minutes between two full runs, since each deletes a 10,000-job store
# (more after --scale, which deletes 110,000 planted jobs with `runrm`).
set -euo pipefail

quick=0 build_time=1 queue_only=0 scale=0 scale_only=0 bin= args="$*"
while (($#)); do
    case $1 in
    --quick) quick=1 build_time=0 ;;
    --no-build-time) build_time=0 ;;
    --queue-only) queue_only=1 build_time=0 ;;
    --scale) scale=1 ;;
    --scale-only) scale=1 scale_only=1 build_time=0 ;;
    --bin)
        [[ -n ${2:-} ]] || {
            echo "bench/run.sh: --bin needs a directory" >&2
            exit 2
        }
        bin=$(cd "$2" && pwd) build_time=0
        shift
        ;;
    -h | --help)
        sed -n '2,47p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "bench/run.sh: unknown option '$1' (see --help)" >&2
        exit 2
        ;;
    esac
    shift
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROBE=$ROOT/bench/probe.py
step() { printf '%s  %s\n' "$(date +%T)" "$*" >&2; }

# --- tools ----------------------------------------------------------------------
missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
command -v nq >/dev/null || missing+=(nq)
command -v tsp >/dev/null || missing+=(task-spooler)
[[ -x /usr/bin/time ]] || missing+=(time)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
    step "installing ${missing[*]}"
    sudo=()
    ((EUID == 0)) || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || {
    echo "bench/run.sh: cargo not found (install Rust first)" >&2
    exit 1
}

commit=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo 'not a git checkout')
if [[ -n $bin ]]; then
    export BIN=$bin
    commit="binaries of $bin; bench at $commit"
else
    step "building the release binaries"
    (cd "$ROOT" && timeout 1800 cargo build --release --locked --quiet)
    TARGET=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    export BIN=$TARGET/release
fi

# --- a private world, cleaned up whatever happens ---------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bgrun-bench.XXXXXX") SHM=
export TMP RES=$TMP/res BGRUN_BENCH_TOKEN=$TMP
cleanup() {
    set +e
    for sock in "$TMP"/*.sock; do
        [[ -S $sock ]] && TS_SOCKET=$sock timeout 10 tsp -K >/dev/null 2>&1
    done
    timeout 30 python3 "$PROBE" reap
    rm -rf "$TMP" ${SHM:+"$SHM"}
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
mkdir -p "$RES" "$TMP/hf" "$TMP/tmp"
export TMPDIR=$TMP/tmp TS_SOCKET=$TMP/tsp.sock NQDIR=$TMP/nq RUN_DIR=$TMP/store LC_ALL=C
mkdir -p "$NQDIR"
# As in a login shell: without USER or LOGNAME, `run` asks the password
# database (NSS) for the name it records: a login shell sets USER, cron
# LOGNAME.
[[ -n ${USER:-} ]] || USER=$(id -un)
export USER
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

if ((quick)); then
    RUNS=30 WARM=5 SAMPLES=8 LIST_SIZES=(100 1000) BIG=1000 OUT_BYTES=$((64 << 20)) OUT_ROUNDS=2 FLOW=200
    : "${SCALE_SIZES:=200 1000}" "${SCALE_FILL:=1000}" "${SCALE_FLOW:=200}" "${SCALE_ROUNDS:=2}"
    : "${SCALE_CHAIN:=200}" "${SCALE_CHAIN_MAX:=120}" "${SCALE_LEGACY:=1000}" "${SCALE_RUNS:=10}"
else
    RUNS=300 WARM=20 SAMPLES=25 LIST_SIZES=(100 1000 10000) BIG=10000 OUT_BYTES=$((1 << 30)) OUT_ROUNDS=10 FLOW=2000
    : "${SCALE_SIZES:=10000 100000}" "${SCALE_FILL:=10000}" "${SCALE_FLOW:=1000}" "${SCALE_ROUNDS:=4}"
    : "${SCALE_CHAIN:=10000}" "${SCALE_CHAIN_MAX:=1200}" "${SCALE_LEGACY:=40000}" "${SCALE_RUNS:=30}"
fi
: "${SCALE_BATCH:=50}" "${SCALE_RUNS_BIG:=10}"

# hf KEY RUNS WARMUP COMMAND: one hyperfine measurement without a shell (-N),
# its samples saved under KEY.
# With PREPARE set, hyperfine runs it before each run (not timed).
hf() {
    local key=$1 runs=$2 warm=$3 cmd=$4
    local -a prep=()
    [[ -n ${PREPARE:-} ]] && prep=(--prepare "$PREPARE")
    timeout 900 hyperfine -N --style basic --warmup "$warm" --runs "$runs" "${prep[@]}" \
        --export-json "$TMP/hf/$key.json" "$cmd" >>"$TMP/hyperfine.log" 2>&1 || {
        tail -20 "$TMP/hyperfine.log" >&2
        return 1
    }
    python3 "$PROBE" hf "$TMP/hf/$key.json" "$key"
}
probe() { timeout 900 python3 "$PROBE" "$@"; }
# abba KEY FUNCTION...: each FUNCTION measures when called with the key to
# save under; they run in the order given with KEY.1, then in reverse with
# KEY.2, and KEY gets the samples of both halves.
abba() {
    local -a keys=() funcs=()
    while (($#)); do
        keys+=("$1") funcs+=("$2")
        shift 2
    done
    local i key n=${#keys[@]}
    for ((i = 0; i < n; i++)); do "${funcs[i]}" "${keys[i]}.1"; done
    for ((i = n - 1; i >= 0; i--)); do "${funcs[i]}" "${keys[i]}.2"; done
    for key in "${keys[@]}"; do python3 "$PROBE" merge "$key" "$key.1" "$key.2"; done
}
# Before each section: write everything out, and wait (30 s at most) until
# the dirty and writeback pages are under 1 MiB, so that no section pays
# for the previous one's writes.
quiet() {
    local i kib
    for ((i = 0; i < 150; i++)); do
        sync
        kib=$(awk '/^(Dirty|Writeback):/ {s += $2} END {print s}' /proc/meminfo)
        ((kib < 1024)) && return
        sleep 0.2
    done
    step "  (still $kib KiB dirty or under writeback after 30 s; going on)"
}
# Waits until the queued nq and tsp jobs of the launch tests have finished.
settle() {
    timeout 60 nq -w >/dev/null 2>&1 || true
    timeout 60 tsp -w >/dev/null 2>&1 || true
    tsp -C >/dev/null 2>&1 || true
}

# A store of four real finished jobs (done and failed), copied to make big
# stores (sections 4 and 8).
tmpl=$TMP/store-template
template() {
    [[ -d $tmpl ]] && return
    {
        RUN_DIR=$tmpl "$BIN/run" true
        RUN_DIR=$tmpl "$BIN/run" false
        RUN_DIR=$tmpl "$BIN/run" echo hello
        RUN_DIR=$tmpl "$BIN/run" 'echo out; echo err >&2; exit 3'
    } >/dev/null
    # shellcheck disable=SC2046 # one word per id
    RUN_DIR=$tmpl timeout 60 "$BIN/job" wait $(RUN_DIR=$tmpl "$BIN/runs" --json |
        python3 -c 'import json, sys; print(" ".join(j["id"] for j in json.load(sys.stdin)))') 2>/dev/null || true
}

if ((!queue_only && !scale_only)); then
# --- 1. launch ------------------------------------------------------------------
quiet
step "1 launch: nohup, nq, tsp, run true (ABBA), run sleep 60 ($RUNS runs each)"
half=$((RUNS / 2))
l_floor() { hf "$1" "$half" "$WARM" "sh -c 'nohup true >/dev/null 2>&1 &'"; }
l_nq() { hf "$1" "$half" "$WARM" "nq true" && settle; }
l_tsp() { hf "$1" "$half" "$WARM" "tsp true" && settle; }
l_run() { hf "$1" "$half" "$WARM" "'$BIN/run' true"; }
abba launch.floor l_floor launch.nq l_nq launch.tsp l_tsp launch.run_true l_run
hf launch.run_sleep $((RUNS / 3)) "$WARM" "'$BIN/run' sleep 60"
# Isolated: each launch after a 50 ms pause, so that nothing of the last
# one (its watcher recording the end, writeback) is still running.
i_nq() { PREPARE='sleep 0.05' hf "$1" "$((RUNS / 6))" "$WARM" "nq true" && settle; }
i_run() { PREPARE='sleep 0.05' hf "$1" "$((RUNS / 6))" "$WARM" "'$BIN/run' true"; }
abba launch.nq_isolated i_nq launch.run_isolated i_run
# A script's loop: 100 launches back to back from one shell, each taking
# the id printed as scripts do (`id=$(run …)`: until the tool's stdout is
# closed, not only until it exits), per launch; the shell's forks are in all.
loop() { echo "sh -c 'i=0; while [ \$i -lt 100 ]; do id=\$($1); i=\$((i + 1)); done'"; }
b_nq() { hf "$1" 3 1 "$(loop 'nq true')" && settle; }
b_tsp() { hf "$1" 3 1 "$(loop 'tsp true')" && settle; }
b_run() { hf "$1" 3 1 "$(loop "'$BIN/run' true")"; }
abba launch.nq_loop b_nq launch.tsp_loop b_tsp launch.run_loop b_run
for key in nq_loop tsp_loop run_loop; do python3 "$PROBE" scale "launch.$key" 0.01; done
# Jobs of one name launched within a second share a base id, and all but the
# first retry under a suffixed one: the same launch, a new name each time.
timeout 900 hyperfine -N --style basic --runs 1 -P i 1 "$((RUNS / 3))" \
    --export-json "$TMP/hf/fresh.json" "'$BIN/run' --name t{i} true" >>"$TMP/hyperfine.log" 2>&1
python3 - "$TMP/hf/fresh.json" "$RES/launch.run_fresh.json" <<'EOF'
import json, sys
times = [r["times"][0] * 1000 for r in json.load(open(sys.argv[1]))["results"]]
json.dump({"unit": "ms", "samples": times, "note": ""}, open(sys.argv[2], "w"))
EOF
probe stop-bgrun "$RUN_DIR"
# The same two on a tmpfs (/dev/shm), where making a file costs almost
# nothing: what is left is the processes' own work.
if shm=$(mktemp -d /dev/shm/bgrun-bench.XXXXXX 2>/dev/null); then
    SHM=$shm
    mkdir -p "$shm/nq"
    t_nq() {
        NQDIR=$shm/nq hf "$1" "$half" "$WARM" "nq true"
        NQDIR=$shm/nq timeout 60 nq -w >/dev/null 2>&1 || true
    }
    t_run() { RUN_DIR=$shm/store hf "$1" "$half" "$WARM" "'$BIN/run' true"; }
    abba launch.nq_tmpfs t_nq launch.run_true_tmpfs t_run
    # And a script's loop there (issue 24's form of the launch target:
    # `id=$(run true)` against `id=$(nq true)`, at or under nq on a tmpfs).
    tl_nq() {
        NQDIR=$shm/nq hf "$1" 3 1 "$(loop 'nq true')"
        NQDIR=$shm/nq timeout 60 nq -w >/dev/null 2>&1 || true
    }
    tl_run() { RUN_DIR=$shm/store hf "$1" 3 1 "$(loop "'$BIN/run' true")"; }
    abba launch.nq_loop_tmpfs tl_nq launch.run_loop_tmpfs tl_run
    for key in nq_loop_tmpfs run_loop_tmpfs; do python3 "$PROBE" scale "launch.$key" 0.01; done
    probe stop-bgrun "$shm/store"
    rm -rf "$shm"
fi

# --- 2, 3. exit to visible, wait wake-up ----------------------------------------------------------
quiet
step "2 exit to visible ($SAMPLES samples per tool, twice)"
probe visible "$SAMPLES"
probe poll "$SAMPLES"
quiet
step "3 wait wake-up ($SAMPLES samples per tool)"
probe wake "$SAMPLES"
# The cost of waiting itself: `job wait` on a job that has already ended.
ended=$(RUN_DIR=$TMP/store-wake "$BIN/runs" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)[-1]["id"])')
w_wait() { RUN_DIR=$TMP/store-wake hf "$1" "$((RUNS / 6))" "$WARM" "'$BIN/job' wait $ended"; }
w_status() { RUN_DIR=$TMP/store-wake hf "$1" "$((RUNS / 6))" "$WARM" "'$BIN/job' status $ended"; }
abba wake.ended w_wait wake.status w_status

# --- 4. listing, and launching into a big store ---------------------------------------------------
step "4 listing: stores of ${LIST_SIZES[*]} finished jobs"
template
for n in "${LIST_SIZES[@]}"; do probe mkstore "$tmpl" "$TMP/store-$n" "$n"; done
quiet
for n in "${LIST_SIZES[@]}"; do
    runs=$((n >= 10000 ? RUNS / 10 : RUNS / 3))
    RUN_DIR=$TMP/store-$n hf "list.runs.$n" "$runs" 3 "'$BIN/runs'"
    RUN_DIR=$TMP/store-$n hf "list.json.$n" "$runs" 3 "'$BIN/runs' --json"
done
quiet
step "4 launching into a store of $BIG jobs vs an empty one (ABBA)"
mkdir -p "$TMP/store-0"
s_empty() { RUN_DIR=$TMP/store-0 hf "$1" "$half" "$WARM" "'$BIN/run' true"; }
s_big() { RUN_DIR=$TMP/store-$BIG hf "$1" "$half" "$WARM" "'$BIN/run' true"; }
abba launch.store0 s_empty "launch.store$BIG" s_big

# --- 5. memory ------------------------------------------------------------------------
quiet
step "5 memory: 20 sleeping jobs per tool"
probe memory 20

# --- 6. output throughput -------------------------------------------------------------
quiet
step "6 output: $((OUT_BYTES >> 20)) MiB to stdout (bgrun also under --log-max 10M), $OUT_ROUNDS rounds"
probe throughput "$OUT_BYTES" "$OUT_ROUNDS"

# --- 7. binary ---------------------------------------------------------------------------
mib() { python3 -c "import os, sys; print(os.path.getsize(sys.argv[1]) / 2**20)" "$1"; }
python3 "$PROBE" save bin.run MiB "$(mib "$BIN/run")"
python3 "$PROBE" save bin.runlog MiB "$(mib "$BIN/runlog")"
if ((build_time)); then
    quiet
    step "7 clean release build in a separate target dir"
    secs=$(cd "$ROOT" && CARGO_TARGET_DIR=$TMP/target /usr/bin/time -f %e \
        timeout 1800 cargo build --release --locked --quiet 2>&1 >/dev/null | tail -1)
    python3 "$PROBE" save build.time s "$secs"
    rm -rf "$TMP/target"
fi

fi

# --- 8. queues (issue 14) ------------------------------------------------------------
if ((!scale_only)); then
quiet
step "8 queues: launching into one (ABBA), the next start, $FLOW jobs through 2 slots"
qs=$TMP/store-queue half=$((RUNS / 2))
RUN_DIR=$qs "$BIN/job" queue paused --pause >/dev/null
RUN_DIR=$qs "$BIN/job" queue wide --slots 1024 >/dev/null
mkdir -p "$TMP/nq-queue"
TS_SOCKET=$TMP/tsp-queue.sock tsp -S 2 >/dev/null
q_run() { RUN_DIR=$TMP/store-queue-plain hf "$1" "$half" "$WARM" "'$BIN/run' true"; }
q_paused() { RUN_DIR=$qs hf "$1" "$half" "$WARM" "'$BIN/run' -q paused true"; }
q_free() { RUN_DIR=$qs hf "$1" "$half" "$WARM" "'$BIN/run' -q wide true"; }
q_nq() {
    NQDIR=$TMP/nq-queue hf "$1" "$half" "$WARM" "nq true"
    NQDIR=$TMP/nq-queue timeout 120 nq -w >/dev/null 2>&1 || true
}
q_tsp() {
    TS_SOCKET=$TMP/tsp-queue.sock hf "$1" "$half" "$WARM" "tsp true"
    TS_SOCKET=$TMP/tsp-queue.sock timeout 120 tsp -w >/dev/null 2>&1 || true
}
q_pueue() {
    PUEUE_CONFIG_PATH=$TMP/pueue-qdelay/pueue.yml hf "$1" "$half" "$WARM" \
        "pueue -c $TMP/pueue-qdelay/pueue.yml add -- true"
}
queue_tools=(queue.run_true q_run queue.launch_paused q_paused queue.launch_free q_free
    queue.nq q_nq queue.tsp q_tsp)
if command -v pueue >/dev/null && command -v pueued >/dev/null; then
    probe qdelay 0 # starts the private pueue daemon
    queue_tools+=(queue.pueue q_pueue)
fi
abba "${queue_tools[@]}"
probe qdelay "$SAMPLES"
template
probe mkstore "$tmpl" "$TMP/store-flow" "$BIG"
quiet
probe qflow "$FLOW" "$TMP/store-flow"
for p in "$TMP"/pueue-*/pueue.yml; do
    [[ -f $p ]] && PUEUE_CONFIG_PATH=$p timeout 10 pueue -c "$p" shutdown >/dev/null 2>&1
done
true
fi

# --- 9. scale (issue 24) ---------------------------------------------------------------
# The cost of a command should follow what it shows or decides, not the
# size of the store. The section ends with the `runrm` of whole stores: on
# ext4 without a journal, files made in the minutes after mass deletions
# are slow to create, so nothing is measured after it.
if ((scale)); then
sprobe() { timeout 7200 python3 "$PROBE" "$@"; }
read -ra scale_sizes <<<"$SCALE_SIZES"
half=$((RUNS / 2))
quiet
step "9 scale: filling a store to $SCALE_FILL jobs, $SCALE_BATCH launches at a time, vs tsp (ABBA by batch)"
sprobe fill "$SCALE_FILL" "$SCALE_BATCH"
quiet
step "9 scale: $SCALE_FLOW true jobs from a loop through 2 slots, $SCALE_ROUNDS rounds (ABBA)"
sprobe sflow "$SCALE_FLOW" "$SCALE_ROUNDS"
quiet
step "9 scale: run -q Q true vs run true, each launch on a fresh store (ABBA)"
# Before each run (not timed): the last run's store moved aside (its
# watcher may still be recording the end) and a new empty one made.
fresh() { echo "sh -c 'rm -rf $1.old; if [ -e $1 ]; then mv $1 $1.old; fi; mkdir -m 700 $1'"; }
f_run() {
    RUN_DIR=$TMP/scale-fresh-run PREPARE=$(fresh "$TMP/scale-fresh-run") hf "$1" "$half" "$WARM" "'$BIN/run' true"
}
f_q() {
    RUN_DIR=$TMP/scale-fresh-q PREPARE=$(fresh "$TMP/scale-fresh-q") hf "$1" "$half" "$WARM" "'$BIN/run' -q Q true"
}
abba scale.fresh.run f_run scale.fresh.q f_q
quiet
step "9 scale: an --after chain of $SCALE_CHAIN launches (${SCALE_CHAIN_MAX} s at most)"
sprobe chain "$SCALE_CHAIN" "$SCALE_CHAIN_MAX"
step "9 scale: planting stores of $SCALE_SIZES ended jobs (and a copy of each for runrm)"
one=$TMP/scale-template
id=$(RUN_DIR=$one "$BIN/run" true | cut -d' ' -f1)
RUN_DIR=$one timeout 60 "$BIN/job" wait "$id" >/dev/null
for ((i = 0; i < 100; i++)); do # the watcher writes ended_at just after status
    grep -q '"ended_at": "' "$one/$id/meta.json" && break
    sleep 0.05
done
for n in "${scale_sizes[@]}"; do
    sprobe mkstore "$one" "$TMP/scale-$n" "$n"
    sprobe mkstore "$one" "$TMP/scale-rm-$n" "$n"
done
s_tsp() { TS_SOCKET=$TMP/tsp-fill.sock hf "$1" "$2" 3 "tsp -l"; }
# (abba's own locals, i and n, would hide a loop variable of those names
# from the functions it calls: hence sz.)
# A store's caches (.cache/summary, written by the first `runs --json`;
# .cache/names, by a listing once the store's directory has been still for
# 2 s) are made before its rows, as a user's first listings make them: the
# rows time a store as it stands between two changes.
settle() {
    RUN_DIR=$1 "$BIN/runs" --json >/dev/null
    for ((i = 0; i < 40; i++)); do
        RUN_DIR=$1 "$BIN/runs" -n 1 >/dev/null
        [[ -f $1/.cache/names ]] && return
        sleep 0.5
    done
    echo "bench: $1/.cache/names was not written within 20 s" >&2
}
for sz in "${scale_sizes[@]}"; do
    runs=$((sz >= 100000 ? SCALE_RUNS_BIG : SCALE_RUNS))
    settle "$TMP/scale-$sz"
    quiet
    step "9 scale: a store of $sz ended jobs: runs --json, runs -n 20, runlog NAME, peak memory ($runs runs)"
    s_json() { RUN_DIR=$TMP/scale-$sz hf "$1" "$((runs / 2))" 2 "'$BIN/runs' --json"; }
    if ((sz == SCALE_FILL)); then # task-spooler holds as many finished jobs
        s_tsp_n() { s_tsp "$1" "$((runs / 2))"; }
        abba "scale.json.$sz" s_json "scale.tsp_list.$sz" s_tsp_n
    else
        RUN_DIR=$TMP/scale-$sz hf "scale.json.$sz" "$runs" 2 "'$BIN/runs' --json"
    fi
    RUN_DIR=$TMP/scale-$sz hf "scale.last20.$sz" "$runs" 2 "'$BIN/runs' -n 20"
    RUN_DIR=$TMP/scale-$sz hf "scale.log.$sz" "$runs" 2 "'$BIN/runlog' true --no-follow"
    RUN_DIR=$TMP/scale-$sz sprobe peakmem "scale.mem.$sz" 5 "$BIN/runs" --json
done
step "9 scale: the old scripts' files, $SCALE_LEGACY pairs and a tenth of that"
for n in "$SCALE_LEGACY" "$((SCALE_LEGACY / 10))"; do
    sprobe legacy "$TMP/scale-legacy-$n" "$n"
done
quiet
l_big() { RUN_DIR=$TMP/scale-legacy-$SCALE_LEGACY hf "$1" "$((SCALE_RUNS / 2))" 2 "'$BIN/runs'"; }
l_small() { RUN_DIR=$TMP/scale-legacy-$((SCALE_LEGACY / 10)) hf "$1" "$((SCALE_RUNS / 2))" 2 "'$BIN/runs'"; }
abba "scale.legacy.$SCALE_LEGACY" l_big "scale.legacy.$((SCALE_LEGACY / 10))" l_small
for n in "${scale_sizes[@]}"; do
    quiet
    step "9 scale: runrm of all $n jobs (once)"
    sprobe rmall "$TMP/scale-rm-$n" "scale.rm.$n"
done
fi

# --- the table -------------------------------------------------------------------------------
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
table=$TMP/table.md
python3 "$PROBE" table "$table"
version() { "$@" 2>&1 | head -1 || true; }
now=$(date -u +%s)
suffix=
if ((quick)); then suffix=-quick; fi
results=$ROOT/bench/runs/$(date -u -d "@$now" +%Y-%m-%d-%H%M)$suffix.md
mkdir -p "$ROOT/bench/runs"
{
    echo "# Benchmark results"
    echo
    echo "Made by \`bash bench/run.sh${args:+ $args}\` on $(date -u -d "@$now" '+%Y-%m-%d %H:%M UTC')."
    echo
    echo "- Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'),"
    echo "  $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 2^20}' /proc/meminfo) RAM, Linux $(uname -r);" \
        "load average $load_before at the start, $load_after at the end."
    echo "- Versions: bgrun $("$BIN/run" --version | awk '{print $2}') ($commit)," \
        "nq $(dpkg-query -W -f='${Version}' nq 2>/dev/null || echo '?')," \
        "tsp $(dpkg-query -W -f='${Version}' task-spooler 2>/dev/null || version tsp -V)," \
        "$(version hyperfine --version), $(version rustc --version)."
    echo "- The machine is shared with other engineers' builds and tests: absolute"
    echo "  figures are noisy; the ratios, measured in the same run, are what count."
    echo
    cat "$table"
    echo
    cat <<'EOF'
How each figure is made (bench/run.sh, bench/probe.py):
0. Every section starts after a `sync`, once the dirty and writeback pages
   are under 1 MiB (30 s at most). Tools compared in a section take turns
   in ABBA order: hyperfine's runs in two halves, the second in reverse
   order (each half with its warm-up); the probes' samples in pairs, the
   second reversed; section 6's rounds in rotation. The Ratio column is
   the ratio of the medians; where the two were measured in step (exit to
   visible: the samples of a pair; output: the tools of a round), it also
   gives the ratios taken pair by pair (their median and middle half) or
   round by round (their median and min–max). The output's target holds
   only if every round is within it.
1. Launch: hyperfine -N (no shell, so no shell start-up is counted), with
   warm-up; the time until the command returns. The floor is
   `sh -c 'nohup true >/dev/null 2>&1 &'`.
   `run --name tN true` gives every launch a new id (one hyperfine command
   per N, one run each, after the warm-up of the rows above). The tmpfs
   row runs `run true` and `nq true` with their stores in /dev/shm.
   hyperfine's runs follow each other at once (back to back: the last
   job's watcher may still be recording its end); the isolated rows wait
   50 ms before each run (hyperfine --prepare, not timed); the loop rows
   time one shell running 100 launches in a `while` loop, each `id=$(…)`
   as scripts do, divided by 100 (3 such loops per tool, ABBA). hyperfine
   waits only for the command's own exit: `nq` exits right after its
   first fork, before its job file exists (its child writes the id, and
   creates the file); a script reading the id waits until the tool's
   stdout closes, which the loop rows include.
2. Exit to visible: the job is `bash -c 'sleep 0.2; echo $EPOCHREALTIME > T'`,
   so it stamps its own exit. bgrun: until `status` is renamed into place
   (inotify), each time confirmed by a `runs --json` started at that moment
   (the only thing `runs` needs to show a job ended is `status`). nq: until
   the job file's lock is released (a blocking flock: the job's exit
   itself, before nq knows how it ended), and until nq has written its
   `[exited with status N.]` line (inotify): what `status` is to bgrun,
   the row the target is judged on. The polling row calls
   the tool's own listing back to back until one returns showing the job
   ended: it includes that call and part of the one before.
3. Wait wake-up: the same job (sleeping 0.3 s), and the tool's wait command
   started meanwhile; until it returns. Then, with hyperfine, `job wait` on
   a job that has already ended, next to `job status` of the same job: what
   waiting costs beyond reading the job.
4. Listing: stores made of copies of four real finished jobs (done and
   failed) under new ids; launching: `run true` into the big store and into
   one that starts empty (ABBA).
5. Memory: /proc/PID/smaps_rollup of each tool's own per-job process while
   20 `sleep 300` jobs run (bgrun: the watcher; nq: its process above the
   job, one queue per job so that all run at once; tsp: each job's client
   plus a 20th of its server, with 20 slots).
6. Output: `head -c SIZE /dev/zero` from launch to the recorded end (bgrun:
   `status` appears; nq: lock released; tsp: `tsp -w` returns) vs the same
   command with stdout opened straight on a file; bgrun also under
   `--log-max 10M` (through a pipe its watcher copies into the log, punching
   the oldest output out past the cap);
   the order rotates per round, and each round starts after a `sync`. The
   plain redirect runs twice in each round, at two places in its order:
   the second against the first ("again") is what the disk alone does to a
   same-round ratio, judged by the same target.
7. Binary: stripped release sizes; a clean release build in an empty target
   directory (one sample, on a machine shared with other builds).
8. Queues: hyperfine of `run -q Q true` into a paused queue (queueing
   alone) and into a queue with free slots (queued, then started at once),
   next to `run true`, `nq true`, `tsp true` (-S 2) and `pueue add true`.
   The next start: two jobs into a queue of one slot; the first stamps its
   exit, the second its start (`$EPOCHREALTIME`, both from bash). The flow:
   N `true` jobs launched one after another into 2 slots (tsp -S 2, pueue
   parallel 2; nq has one), from the first launch to the last end, with
   bgrun's store already holding the ended jobs of section 4's size.
9. Scale (with --scale; the sizes are in the rows): the store is filled
   by a shell starting SCALE_BATCH `run true` (or `tsp true`, 1 slot,
   keeping every finished job) at once with `&`, then `wait`: the time of
   each batch's launches, bgrun and tsp taking turns batch by batch in
   ABBA order, the batch's jobs waited for (not timed) before the next;
   the figure is the median batch's rate, with the first and last tenth
   of the batches beside it. Through 2 slots: a shell's `while` loop of
   `run -q flow true` (`tsp true` with -S 2, `nq true`, `pueue add true`)
   on a fresh store, server or daemon per round, then the tool's wait,
   first launch to last end, in rounds (ABBA). `run -q Q true` and `run
   true` each on a fresh empty store (hyperfine --prepare moves the last
   one aside, not timed). The --after chain: a head job that runs until
   released, then `run --after PREV true` each after the last, all left
   waiting, each launch timed from the probe (Python's own fork and exec
   are in every launch alike); a row is the median of a window of 50
   launches (a twentieth of a shorter chain) ending at that launch (the
   first row: launches 1-50). The
   stores of ended jobs are copies of one real ended `run true` under
   distinct ids of the usual form (`true_YYYYmmdd_HHMMSS`, one second
   apart, meta.json and status rewritten to match); `runs --json` of as
   many jobs as task-spooler's server holds is measured against `tsp -l`
   (ABBA); peak memory is /usr/bin/time's maximum RSS; `runrm` of all
   runs once on a second copy of each store, last in the section, and the
   files left in `.ids` are counted after it. The old scripts' files are
   pairs `old_YYYYmmdd_HHMMSS.log`/`.pid` (a pid no process can have), at
   two sizes a tenth apart (ABBA), listed by `runs`.
Every `run` the probes make is checked: the id it prints names a job
directory that already holds its meta.json (the probe stops otherwise).
EOF
    # The hand-written analysis of the misses, with its profiles.
    if [[ -f $ROOT/bench/GAPS.md ]]; then
        echo
        cat "$ROOT/bench/GAPS.md"
    fi
} >"$results"
step "written to ${results#"$ROOT"/}"
