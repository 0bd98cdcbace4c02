#!/usr/bin/env bash
# Where the time from a job's exit to its recorded end goes, for bgrun's
# watcher and for nq, from kernel tracepoints (bench/GAPS.md, "Exit to
# visible", quotes its figures).
#
#   bash bench/trace-exit.sh [N]      N jobs per tool (default 15)
#
# Each tool runs N jobs `bash -c 'sleep 0.25'` one after the other, under
# `perf record -a` of the system-call and scheduler tracepoints and of every
# page fault. For each job it prints the medians (and quartiles) of:
#   exit → reaped   the job's exit (sched_process_exit) to the return of
#                   its parent's wait4 that reaped it
#   reaped → record from there to bgrun's rename of `status`, or to nq's
#                   first write of its `[exited with status N.]` line, with
#                   the page faults taken on the way
# Needs perf and the right to trace the whole system (root, or
# kernel.perf_event_paranoid at -1), nq, and python3. Builds and uses the
# release binaries, a temporary store and NQDIR, and touches nothing else.
set -euo pipefail

n=${1:-15}
[[ $n =~ ^[0-9]+$ ]] && ((n >= 3)) || {
    echo "bench/trace-exit.sh: N must be a number of at least 3, not '$n'" >&2
    exit 2
}
for tool in perf nq python3; do
    command -v "$tool" >/dev/null || {
        echo "bench/trace-exit.sh: $tool is not installed" >&2
        exit 1
    }
done
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
(cd "$ROOT" && cargo build --release --locked --quiet)
BIN=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bgrun-trace.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export RUN_DIR=$TMP/store NQDIR=$TMP/nq USER=${USER:-$(id -un)}
mkdir -p "$NQDIR"

events=raw_syscalls:sys_enter,raw_syscalls:sys_exit,sched:sched_process_exit,page-faults
record() { # record OUT COMMAND: N jobs of COMMAND, 0.4 s apart
    perf record -q -o "$1" -c 1 -e "$events" -a -- bash -c \
        "for i in \$(seq $n); do $(printf %q "$2") bash -c 'sleep 0.25' >/dev/null; sleep 0.4; done"
}
record "$TMP/bgrun.data" "$BIN/run"
(cd "$NQDIR" && record "$TMP/nq.data" nq)

report() { # report DATA TOOL
    perf script -i "$1" -F comm,pid,time,event,trace 2>/dev/null | python3 -c '
import statistics, sys

tool = sys.argv[1]
# System calls by number (x86-64): 1 write, 61 wait4, 82 rename.
WRITE, WAIT4, RENAME = "1", "61", "82"
exited = None                      # the last job (bash or sleep) to exit
woke, faults = {}, {}              # per waiting process: when it reaped, faults since
to_wake, to_record, nfaults = [], [], []
for line in sys.stdin:
    f = line.split()
    if len(f) < 4:
        continue
    comm, pid, t, event = f[0], f[1], float(f[2].rstrip(":")), f[3].rstrip(":")
    if event == "sched:sched_process_exit":
        if "comm=bash" in line or "comm=sleep" in line:
            exited = t
        continue
    if comm != ("run" if tool == "bgrun" else "nq"):
        continue
    nr = f[5] if len(f) > 5 else ""
    if event == "raw_syscalls:sys_exit":
        if nr == WAIT4 and f[-1].isdigit() and int(f[-1]) > 0 and pid not in woke:
            woke[pid], faults[pid] = t, 0
            if exited is not None:
                to_wake.append((t - exited) * 1e6)
    elif event == "page-faults" and pid in woke:
        faults[pid] += 1
    elif event == "raw_syscalls:sys_enter" and pid in woke and nr == (RENAME if tool == "bgrun" else WRITE):
        to_record.append((t - woke.pop(pid)) * 1e6)
        nfaults.append(faults.pop(pid))

def show(what, v):
    if len(v) < 3:
        return f"{what}: too few samples ({len(v)})"
    q = statistics.quantiles(v)
    return f"{what} {statistics.median(v):.0f} us ({q[0]:.0f}-{q[2]:.0f})"

median_faults = statistics.median(nfaults) if nfaults else 0
print("%-6s n=%d  %s  %s  faults %.0f" % (tool, len(to_record), show("exit -> reaped", to_wake),
                                          show("reaped -> record", to_record), median_faults))
' "$2"
}
report "$TMP/bgrun.data" bgrun
report "$TMP/nq.data" nq
