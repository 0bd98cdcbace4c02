#!/usr/bin/env python3
"""The measurements of bench/run.sh that hyperfine cannot make, and the table.

Every probe writes its samples to RES/KEY.json as {"unit", "samples", "note"};
`table` reads them all and prints the Markdown table. The timestamps of a
job's exit come from the job itself: it runs

    bash -c 'sleep 0.2; echo $EPOCHREALTIME > T' bench T

so the time is taken by a builtin right before bash exits, on the same clock
(CLOCK_REALTIME) as time.time() here. Nothing here kills a process that does
not carry this run's BGRUN_BENCH_TOKEN in its environment.

Usage (from run.sh; the environment gives BIN, RES, TMP and the token):
  probe.py hf HYPERFINE.json KEY...      one KEY per command in the export
  probe.py mkstore TEMPLATE_STORE DEST N
  probe.py visible | poll | wake N
  probe.py throughput BYTES ROUNDS
  probe.py memory JOBS
  probe.py qdelay N                      queues: a slot freed → the next job's start
  probe.py qflow JOBS STORE              queues: JOBS `true` through 2 slots
  probe.py legacy DEST N                 scale: N pairs of the old scripts' files
  probe.py fill N BATCH                  scale: fill a store to N jobs, BATCH at a time, vs tsp
  probe.py sflow JOBS ROUNDS             scale: JOBS `true` from a loop through 2 slots
  probe.py chain N MAX_SECONDS           scale: an --after chain of N launches
  probe.py peakmem KEY RUNS ARGV...      scale: peak RSS of ARGV
  probe.py rmall STORE KEY               scale: `runrm` of a whole store, timed once
  probe.py stop-bgrun STORE              kill the store's running jobs
  probe.py reap                          kill every process of this run
  probe.py save KEY UNIT VALUE...        record figures measured elsewhere
  probe.py merge KEY PART...             KEY's samples: those of the PARTs
  probe.py table OUT.md                  print the table, write OUT.md
"""

import ctypes
import datetime
import fcntl
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("BIN", "")
RES = os.environ.get("RES", "")
TMP = os.environ.get("TMP", "")
TOKEN = os.environ.get("BGRUN_BENCH_TOKEN", "")
DEADLINE = 30.0  # seconds any one job may take before a probe gives up
CAP, CAP_BYTES = "10M", 10 << 20  # the output row's `--log-max`


def abba(items, i):
    """The order of sample i: as given for even i, reversed for odd i, so
    that over each pair of samples every tool comes first once (ABBA)."""
    return list(items) if i % 2 == 0 else list(reversed(items))


def bgrun(name):
    return os.path.join(BIN, name)


def save(key, unit, samples, note=""):
    with open(os.path.join(RES, key + ".json"), "w") as f:
        json.dump({"unit": unit, "samples": samples, "note": note}, f)


class _Alarm(Exception):
    pass


def _alarm(_sig, _frame):
    raise _Alarm()


class limit:
    """Bounds a blocking wait by SIGALRM. (subprocess's own timeouts poll
    with sleeps of up to 50 ms, which would show in the figures; a plain
    blocking wait under an alarm wakes at once.)"""

    def __init__(self, seconds, what):
        self.seconds, self.what = seconds, what

    def __enter__(self):
        self.old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, kind, _value, _tb):
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.old)
        if kind is _Alarm:
            raise SystemExit(f"probe: {self.what}: still waiting after {self.seconds:.0f} s")


def run(argv, env=None, stdout=subprocess.PIPE, seconds=DEADLINE):
    """Runs argv to its end; returns its stdout (text) or None."""
    with limit(seconds, " ".join(argv)):
        p = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE, env=env)
        try:
            text, err = p.communicate()
        except _Alarm:
            p.kill()
            p.wait()
            raise
    if p.returncode != 0:
        raise SystemExit(f"probe: {' '.join(argv)}: exit {p.returncode}: {err.decode(errors='replace').strip()}")
    return text.decode() if text is not None else None


def out(argv, env=None):
    """Runs argv, returns its stdout; fails loudly on a non-zero exit."""
    return run(argv, env)


def env_with(**kv):
    e = dict(os.environ)
    e.update(kv)
    return e


# --- waiting on files and locks ------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE = 0x8, 0x80, 0x100


def wait_for_file(d, name, timeout=DEADLINE):
    """Blocks (inotify) until d/name exists; returns time.time() at that moment."""
    fd = _libc.inotify_init1(os.O_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1")
    try:
        if _libc.inotify_add_watch(fd, os.fsencode(d), IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {d}")
        end = time.monotonic() + timeout
        path = os.path.join(d, name)
        while not os.path.exists(path):
            left = end - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise SystemExit(f"probe: {path} did not appear within {timeout:.0f} s")
            os.read(fd, 65536)
        return time.time()
    finally:
        os.close(fd)


IN_MODIFY = 0x2


def watch_file(path):
    """An inotify descriptor watching path for writes (to be made before
    the write it waits for, so that none is missed)."""
    fd = _libc.inotify_init1(os.O_CLOEXEC)
    if fd < 0 or _libc.inotify_add_watch(fd, os.fsencode(path), IN_MODIFY | IN_CLOSE_WRITE) < 0:
        raise OSError(ctypes.get_errno(), f"inotify on {path}")
    return fd


def wait_for_text(fd, path, text, timeout=DEADLINE):
    """Blocks (on `fd`, from watch_file) until path holds text; returns
    time.time() at that moment, and closes fd."""
    try:
        end = time.monotonic() + timeout
        while True:
            with open(path, "rb") as f:
                if text in f.read():
                    return time.time()
            left = end - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise SystemExit(f"probe: {path} did not come to hold {text!r} within {timeout:.0f} s")
            os.read(fd, 65536)
    finally:
        os.close(fd)


def wait_for_unlock(path, timeout=DEADLINE):
    """Blocks until no process holds a lock on path (nq's "job running");
    returns time.time() at that moment."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with limit(timeout, f"the lock on {path}"):
            fcntl.flock(fd, fcntl.LOCK_SH)
        return time.time()
    finally:
        os.close(fd)


def exit_stamp(path, timeout=DEADLINE):
    """The job's own exit timestamp (seconds), once it has written it."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(path) as f:
                text = f.read().strip()
            if text:
                return float(text)
        except FileNotFoundError:
            pass
        time.sleep(0.001)
    raise SystemExit(f"probe: the job never wrote {path}")


def stamped_job(tag, delay):
    """argv of a job that sleeps, writes its exit time to a file, exits 0."""
    t = os.path.join(TMP, f"exit-{tag}-{time.monotonic_ns()}")
    script = f'sleep {delay}; echo $EPOCHREALTIME > "$1"'
    return ["bash", "-c", script, "bench", t], t


# --- the tools: launch one job, and its place on disk --------------------------


def launch_bgrun(argv, store):
    """Runs `run ARGV`; the id it prints must name a job that exists."""
    text = out([bgrun("run")] + argv, env_with(RUN_DIR=store))
    jid = text.split()[0]
    if not os.path.isfile(os.path.join(store, jid, "meta.json")):
        raise SystemExit(f"probe: run printed {jid}, but {store}/{jid} is not a job")
    return jid


def launch_nq(argv, nqdir):
    name = out(["nq"] + argv, env_with(NQDIR=nqdir)).strip()
    return os.path.join(nqdir, name)


def launch_tsp(argv):
    return out(["tsp"] + argv).strip()


def bgrun_state(store, jid):
    jobs = json.loads(out([bgrun("runs"), "--json"], env_with(RUN_DIR=store)))
    return next((j["state"] for j in jobs if j["id"] == jid), None)


# --- probes -------------------------------------------------------------------


def hf(export, keys):
    """hyperfine's export: one KEY per command, samples in ms."""
    with open(export) as f:
        results = json.load(f)["results"]
    for key, r in zip(keys, results):
        save(key, "ms", [t * 1000 for t in r["times"]], r["command"])


def mkstore(template, dest, n):
    """A store of n finished jobs: copies of the real finished jobs in
    template, each under a new, unique id of the usual form."""
    jobs = []
    for name in sorted(os.listdir(template)):
        d = os.path.join(template, name)
        if name.startswith(".") or not os.path.exists(os.path.join(d, "status")):
            continue
        files = {}
        for fname in os.listdir(d):
            if not fname.startswith("."):
                with open(os.path.join(d, fname), "rb") as f:
                    files[fname] = f.read()
        jobs.append(files)
    if not jobs:
        raise SystemExit(f"probe: no finished job in {template}")
    os.makedirs(dest, mode=0o700, exist_ok=True)
    base = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    for i in range(n):
        files = dict(jobs[i % len(jobs)])
        meta = json.loads(files["meta.json"])
        when = base + datetime.timedelta(seconds=i)
        jid = f"{meta['name']}_{when:%Y%m%d_%H%M%S}"
        meta["id"] = jid
        meta["started_at"] = when.isoformat(timespec="milliseconds")
        meta["ended_at"] = (when + datetime.timedelta(seconds=1)).isoformat(timespec="milliseconds")
        files["meta.json"] = json.dumps(meta, indent=2).encode()
        if "status" in files:  # "STATE exit|signal N ENDED_AT": the end, as in meta.json
            words = files["status"].decode().split(" ")
            if len(words) >= 4:
                words[3] = meta["ended_at"] + ("\n" if words[3].endswith("\n") else "")
                files["status"] = " ".join(words).encode()
        d = os.path.join(dest, jid)
        os.mkdir(d, 0o700)
        for fname, data in files.items():
            with open(os.path.join(d, fname), "wb") as f:
                f.write(data)


def visible(n):
    """Exit to visible, watched exactly. bgrun: exit until `status` is
    renamed into place (inotify), each sample confirmed by a `runs --json`
    started at that moment; if one showed the job still running, the sample
    is the first `runs --json` that did not. nq: exit until the job file's
    lock is released (a blocking flock: the job's exit itself, before nq
    has written how it ended), and exit until nq's `[exited with status
    N.]` line is written (inotify), what `status` is to bgrun."""
    store = os.path.join(TMP, "store-visible")
    nqdir = os.path.join(TMP, "nq-visible")
    os.makedirs(nqdir, exist_ok=True)
    b, q, qs, late = [], [], [], 0

    def bgrun_sample():
        nonlocal late
        argv, t = stamped_job("vb", 0.2)
        jid = launch_bgrun(argv, store)
        seen = wait_for_file(os.path.join(store, jid), "status")
        end = time.monotonic() + DEADLINE
        while True:
            start = time.time()
            if bgrun_state(store, jid) != "running":
                break
            if time.monotonic() > end:
                raise SystemExit(f"probe: runs --json still shows {jid} running")
            late += 1
            seen = None
        b.append(((seen or start) - exit_stamp(t)) * 1000)

    def nq_sample():
        argv, t = stamped_job("vq", 0.2)
        path = launch_nq(argv, nqdir)
        fd = watch_file(path)
        seen = wait_for_unlock(path)
        written = wait_for_text(fd, path, b"[exited with status")
        stamp = exit_stamp(t)
        q.append((seen - stamp) * 1000)
        qs.append((written - stamp) * 1000)

    for i in range(n):
        for sample in abba([bgrun_sample, nq_sample], i):
            sample()
    save("visible.bgrun", "ms", b, f"{late} of {n} not yet shown by runs --json at the status event")
    save("visible.nq", "ms", q)
    save("visible.nq_status", "ms", qs)


def poll(n):
    """Exit to visible as a user's loop sees it: the tool's own listing
    called back to back; the sample is the end of the first call that shows
    the job ended (when the loop knows), minus the exit. It includes up to
    two calls: the one that just missed the end, and the one that saw it."""
    store = os.path.join(TMP, "store-poll")
    res = {"bgrun": [], "tsp": []}
    calls = {"bgrun": [], "tsp": []}
    for i in range(n):
        for tool in abba(["bgrun", "tsp"], i):
            argv, t = stamped_job("p" + tool, 0.2)
            if tool == "bgrun":
                jid = launch_bgrun(argv, store)
                ask = [bgrun("runs"), "--json"]
                env = env_with(RUN_DIR=store)
            else:
                jid = launch_tsp(argv)
                ask = ["tsp", "-s", jid]
                env = None
            end = time.monotonic() + DEADLINE
            while time.monotonic() < end:
                start = time.time()
                text = out(ask, env)
                done = time.time()
                calls[tool].append((done - start) * 1000)
                if tool == "bgrun":
                    ended = next((j["state"] for j in json.loads(text) if j["id"] == jid), "running") != "running"
                else:
                    ended = text.strip() == "finished"
                if ended:
                    break
            else:
                raise SystemExit(f"probe: {tool} job {jid} never showed as ended")
            res[tool].append((done - exit_stamp(t)) * 1000)
    for tool in res:
        call = statistics.median(calls[tool])
        save(f"poll.{tool}", "ms", res[tool], f"one call takes {call:.2f} ms (median)")


def wake(n):
    """From a job's exit to the tool's wait command returning."""
    store = os.path.join(TMP, "store-wake")
    nqdir = os.path.join(TMP, "nq-wake")
    os.makedirs(nqdir, exist_ok=True)
    res = {"bgrun": [], "tsp": [], "nq": []}
    for i in range(n):
        for tool in abba(list(res), i):
            argv, t = stamped_job("w" + tool, 0.3)
            if tool == "bgrun":
                jid = launch_bgrun(argv, store)
                cmd, env = [bgrun("job"), "wait", jid], env_with(RUN_DIR=store)
            elif tool == "tsp":
                cmd, env = ["tsp", "-w", launch_tsp(argv)], None
            else:
                path = launch_nq(argv, nqdir)
                cmd, env = ["nq", "-w", os.path.basename(path)], env_with(NQDIR=nqdir)
            run(cmd, env, stdout=subprocess.DEVNULL)
            back = time.time()
            res[tool].append((back - exit_stamp(t)) * 1000)
    for tool, samples in res.items():
        save(f"wake.{tool}", "ms", samples)


def throughput(size, rounds):
    """A job writing `size` bytes to stdout, from launch to its recorded
    end, vs the same command with stdout opened straight on a file; bgrun
    both uncapped and under `--log-max 10M` (issue 12)."""
    store = os.path.join(TMP, "store-out")
    nqdir = os.path.join(TMP, "nq-out")
    os.makedirs(nqdir, exist_ok=True)
    argv = ["head", "-c", str(size), "/dev/zero"]
    # "again": the same redirect a second time in each round, at another
    # place in its order: what the disk alone does to a same-round ratio.
    res = {"plain": [], "bgrun": [], "bgrun_cap": [], "nq": [], "tsp": [], "again": []}
    kept = []  # the capped log's disk use at its end, in MiB
    order = list(res)
    for r in range(rounds):
        k = r % len(order)
        for tool in order[k:] + order[:k]:
            t0 = time.time()
            if tool in ("plain", "again"):
                path = os.path.join(TMP, "plain.out")
                with open(path, "wb") as f:
                    run(argv, stdout=f, seconds=DEADLINE * 4)
                t1 = time.time()
                written = os.path.getsize(path)
                os.remove(path)
            elif tool == "bgrun":
                jid = launch_bgrun(argv, store)
                d = os.path.join(store, jid)
                t1 = wait_for_file(d, "status", DEADLINE * 4)
                written = os.path.getsize(os.path.join(d, "log"))
                remove_job(d)
            elif tool == "bgrun_cap":
                jid = launch_bgrun(["--log-max", CAP] + argv, store)
                d = os.path.join(store, jid)
                t1 = wait_for_file(d, "status", DEADLINE * 4)
                st = os.stat(os.path.join(d, "log"))
                written = st.st_size  # the apparent size counts the hole
                kept.append(st.st_blocks * 512 / 2**20)
                if size > 2 * CAP_BYTES and not os.path.exists(os.path.join(d, "dropped")):
                    raise SystemExit(f"probe: --log-max {CAP} dropped nothing of {size} bytes")
                remove_job(d)
            elif tool == "nq":
                path = launch_nq(argv, nqdir)
                t1 = wait_for_unlock(path, DEADLINE * 4)
                written = os.path.getsize(path)
                os.remove(path)
            else:
                jid = launch_tsp(argv)
                run(["tsp", "-w", jid], seconds=DEADLINE * 4)
                t1 = time.time()
                path = out(["tsp", "-o", jid]).strip()
                written = os.path.getsize(path)
                os.remove(path)
            if written < size:
                raise SystemExit(f"probe: {tool} recorded {written} of {size} bytes")
            res[tool].append((t1 - t0) * 1000)
            # Each round starts from a clean disk: the writeback of this
            # output, and the discard of its freed blocks, are not the next
            # round's cost.
            os.sync()
    for tool, samples in res.items():
        note = (f"the log took up to {max(kept):.1f} MiB of disk when `status` appeared (the watcher drops"
                " the last tick's output after)") if tool == "bgrun_cap" else ""
        save(f"out.{tool}", "ms", samples, note)


def remove_job(d):
    """Removes a finished job's directory; its watcher may still be writing
    meta.json (ended_at comes after status), so this retries."""
    end = time.monotonic() + DEADLINE
    while os.path.exists(d):
        shutil.rmtree(d, ignore_errors=True)
        if time.monotonic() > end:
            raise SystemExit(f"probe: cannot remove {d}")
        time.sleep(0.01)


def smaps(pid):
    """The kB fields of /proc/PID/smaps_rollup."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1])
    return fields


def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    rest = text[text.rindex(")") + 2 :].split()
    return {"state": rest[0], "ppid": int(rest[1]), "start": int(rest[19])}


def ours(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return TOKEN and f"BGRUN_BENCH_TOKEN={TOKEN}".encode() in f.read().split(b"\0")
    except OSError:
        return False


def kill_group(pid):
    if ours(pid):
        for target in (-pid, pid):
            try:
                os.kill(target, signal.SIGKILL)
            except ProcessLookupError:
                pass


def memory(jobs):
    """RSS and PSS of each tool's own per-job processes, with `jobs` sleeps
    running: bgrun's watchers, nq's parent of each job, tsp's client of each
    job plus its server's share."""
    store = os.path.join(TMP, "store-mem")
    per = {"bgrun": [], "nq": [], "tsp": []}
    breakdown = {}
    # bgrun
    ids = [launch_bgrun(["sleep", "300"], store) for _ in range(jobs)]
    metas = []
    for jid in ids:
        with open(os.path.join(store, jid, "meta.json")) as f:
            metas.append(json.load(f))
    time.sleep(0.5)  # let every watcher settle into its wait
    for m in metas:
        per["bgrun"].append(smaps(m["watcher_pid"]))
    breakdown["bgrun"] = per["bgrun"][0]
    for m in metas:
        kill_group(m["pid"])
    for jid in ids:
        wait_for_file(os.path.join(store, jid), "status")
    # nq: one queue per job, so that every job runs at once
    paths = []
    for i in range(jobs):
        d = tempfile.mkdtemp(prefix="nq-mem-", dir=TMP)
        paths.append(launch_nq(["sleep", "300"], d))
    time.sleep(0.5)
    jobpids = [int(p.rsplit(".", 1)[1]) for p in paths]
    for jp in jobpids:
        per["nq"].append(smaps(stat(jp)["ppid"]))
    for jp in jobpids:
        kill_group(jp)
    for p in paths:
        wait_for_unlock(p)
    # tsp: its own server, with a slot for every job
    sock = os.path.join(TMP, "tsp-mem.sock")
    env = env_with(TS_SOCKET=sock)
    out(["tsp", "-S", str(jobs)], env)
    tids = [out(["tsp", "sleep", "300"], env).strip() for _ in range(jobs)]
    time.sleep(0.5)
    jobpids = [int(out(["tsp", "-p", t], env).strip()) for t in tids]
    clients = [stat(jp)["ppid"] for jp in jobpids]
    servers = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in clients and ours(int(name)):
            try:
                with open(f"/proc/{name}/comm") as f:
                    comm = f.read().strip()
                with open(f"/proc/{name}/environ", "rb") as f:
                    mine = f"TS_SOCKET={sock}".encode() in f.read().split(b"\0")
            except OSError:
                continue
            if comm == "tsp" and mine:
                servers.append(int(name))
    server = [smaps(s) for s in servers]
    for c in clients:
        s = smaps(c)
        for k in ("Rss", "Pss"):
            s[k] += sum(x[k] for x in server) / jobs
        per["tsp"].append(s)
    for jp in jobpids:
        kill_group(jp)
    run(["tsp", "-K"], env, stdout=subprocess.DEVNULL)
    notes = {
        "bgrun": "the watcher of each job",
        "nq": "nq's process above each job",
        "tsp": f"each job's tsp client + 1/{jobs} of the server ({len(servers)} process)",
    }
    for tool, rows in per.items():
        for k in ("Rss", "Pss"):
            save(f"mem.{tool}.{k.lower()}", "KiB", [r[k] for r in rows], notes[tool])
    with open(os.path.join(RES, "mem.breakdown.json"), "w") as f:
        json.dump(breakdown, f)


# --- queues (issue 14) ------------------------------------------------------------


def have(tool):
    return shutil.which(tool) is not None


def pueue_env(tag):
    """A private pueue daemon's environment (its own config and directory),
    started if needed; None when pueue is not installed."""
    if not (have("pueue") and have("pueued")):
        return None
    d = os.path.join(TMP, f"pueue-{tag}")
    cfg = os.path.join(d, "pueue.yml")
    env = env_with(PUEUE_CONFIG_PATH=cfg)
    if not os.path.exists(cfg):
        os.makedirs(d, exist_ok=True)
        with open(cfg, "w") as f:
            f.write(f"shared:\n  pueue_directory: {d}\n  runtime_directory: {d}\n  use_unix_socket: true\n"
                    f"  unix_socket_path: {d}/pueue.sock\n")
        run(["pueued", "-d", "-c", cfg], env)
        end = time.monotonic() + DEADLINE
        while subprocess.run(["pueue", "-c", cfg, "status"], env=env, capture_output=True).returncode != 0:
            if time.monotonic() > end:
                raise SystemExit("probe: pueued did not start")
            time.sleep(0.05)
    return env, cfg


def qdelay(n):
    """From the end of a queue's running job (its own exit stamp) to the
    start of the next (the next job's own start stamp), in a queue of one
    slot: bgrun, nq (one queue directory per sample), tsp -S 1, pueue
    (parallel 1) where installed."""
    store = os.path.join(TMP, "store-qdelay")
    pue = pueue_env("qdelay")
    tools = ["bgrun", "nq", "tsp"] + (["pueue"] if pue else [])
    res = {t: [] for t in tools}
    sock = os.path.join(TMP, "tsp-qdelay.sock")
    run(["tsp", "-S", "1"], env_with(TS_SOCKET=sock))
    if pue:
        run(["pueue", "-c", pue[1], "parallel", "1"], pue[0])
    for i in range(n):
        for tool in abba(tools, i):
            first, t1 = stamped_job("q1" + tool, 0.2)
            t2 = os.path.join(TMP, f"start-{tool}-{time.monotonic_ns()}")
            second = ["bash", "-c", 'echo $EPOCHREALTIME > "$1"', "bench", t2]
            if tool == "bgrun":
                for argv in (first, second):
                    launch_bgrun(["-q", "d"] + argv, store)
            elif tool == "nq":
                nqdir = os.path.join(TMP, f"nq-qdelay-{i}")
                os.makedirs(nqdir, exist_ok=True)
                for argv in (first, second):
                    launch_nq(argv, nqdir)
            elif tool == "tsp":
                for argv in (first, second):
                    out(["tsp"] + argv, env_with(TS_SOCKET=sock))
            else:
                for argv in (first, second):
                    out(["pueue", "-c", pue[1], "add", "--"] + argv, pue[0])
            res[tool].append((exit_stamp(t2) - exit_stamp(t1)) * 1000)
    for tool, samples in res.items():
        save(f"queue.delay.{tool}", "ms", samples)


def qflow(jobs, store):
    """JOBS `true` jobs through a queue of two slots, from the first launch
    to the last end, in jobs per second; bgrun's store already holds the
    ended jobs it was given. tsp -S 2, pueue parallel 2, and nq (one slot:
    it has no slots)."""
    def timed(launch, wait):
        t0 = time.monotonic()
        for _ in range(jobs):
            launch()
        wait()
        return jobs / (time.monotonic() - t0)

    env = env_with(RUN_DIR=store)
    run([bgrun("job"), "queue", "flow", "--slots", "2"], env)
    ids = []

    def bg_launch():
        ids.append(out([bgrun("run"), "-q", "flow", "true"], env).split()[0])

    def bg_wait():
        run([bgrun("job"), "wait", "--timeout", "10m"] + ids, env, stdout=subprocess.DEVNULL, seconds=900)

    save("queue.flow.bgrun", "jobs/s", [timed(bg_launch, bg_wait)], f"{jobs} jobs")
    sock = os.path.join(TMP, "tsp-flow.sock")
    tenv = env_with(TS_SOCKET=sock)
    run(["tsp", "-S", "2"], tenv)
    save("queue.flow.tsp", "jobs/s",
         [timed(lambda: out(["tsp", "true"], tenv), lambda: run(["tsp", "-w"], tenv, seconds=900))], f"{jobs} jobs")
    nqdir = os.path.join(TMP, "nq-flow")
    os.makedirs(nqdir, exist_ok=True)
    nenv = env_with(NQDIR=nqdir)
    save("queue.flow.nq", "jobs/s",
         [timed(lambda: out(["nq", "true"], nenv), lambda: run(["nq", "-w"], nenv, seconds=900))], f"{jobs} jobs")
    pue = pueue_env("flow")
    if pue:
        penv, cfg = pue
        run(["pueue", "-c", cfg, "parallel", "2"], penv)
        save("queue.flow.pueue", "jobs/s",
             [timed(lambda: out(["pueue", "-c", cfg, "add", "--", "true"], penv),
                    lambda: run(["pueue", "-c", cfg, "wait"], penv, seconds=900))], f"{jobs} jobs")


def stop_bgrun(store):
    """Kills the running jobs of a store (their watchers then record it)."""
    if not os.path.isdir(store):
        return
    pending = []
    for jid in os.listdir(store):
        d = os.path.join(store, jid)
        if jid.startswith(".") or os.path.exists(os.path.join(d, "status")):
            continue
        try:
            with open(os.path.join(d, "meta.json")) as f:
                pid = json.load(f)["pid"]
        except (OSError, ValueError, KeyError):
            continue
        if pid is None:  # queued: no process
            continue
        kill_group(pid)
        pending.append(d)
    end = time.monotonic() + DEADLINE
    while pending and time.monotonic() < end:
        pending = [d for d in pending if not os.path.exists(os.path.join(d, "status"))]
        time.sleep(0.05)


def reap():
    """SIGKILLs every process that carries this run's token, until none is left."""
    if not TOKEN:
        return
    spare = set()
    pid = os.getpid()
    while pid > 1:
        spare.add(pid)
        pid = stat(pid)["ppid"]
    end = time.monotonic() + 10
    while time.monotonic() < end:
        found = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in spare and ours(int(p))]
        found = [p for p in found if stat_or_none(p) not in (None, "Z")]
        if not found:
            return
        for p in found:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def merge(key, parts):
    """KEY's samples are those of the PARTs (the halves of an ABBA
    measurement), in order; the note is the first part's."""
    rs = [json.load(open(os.path.join(RES, p + ".json"))) for p in parts]
    save(key, rs[0]["unit"], [s for r in rs for s in r["samples"]], rs[0]["note"])


def scale(key, factor):
    """KEY's samples times factor (a loop of N launches: per launch)."""
    r = json.load(open(os.path.join(RES, key + ".json")))
    save(key, r["unit"], [v * factor for v in r["samples"]], r["note"])


def stat_or_none(pid):
    try:
        return stat(pid)["state"]
    except (OSError, ValueError):
        return None


# --- scale (issue 24) ------------------------------------------------------------


def legacy_store(dest, n):
    """The old run scripts' files: n pairs `old_YYYYmmdd_HHMMSS.log` and
    `.pid`, one second apart, each pid file naming a pid no process can
    have (above the kernel's limit of 2^22), so every job shows ended."""
    os.makedirs(dest, mode=0o700, exist_ok=True)
    base = datetime.datetime(2025, 1, 1)
    for i in range(n):
        when = base + datetime.timedelta(seconds=i)
        stem = os.path.join(dest, f"old_{when:%Y%m%d_%H%M%S}")
        with open(stem + ".log", "w") as f:
            f.write(f"Command: true\nStarted: {when:%Y-%m-%d %H:%M:%S}\n\n")
        with open(stem + ".pid", "w") as f:
            f.write("4194305\n")


def shell_loop(n, cmd, background=False):
    """argv of a shell running cmd n times in a `while` loop (each in the
    background with `&`, then `wait`, when background)."""
    sep = " &" if background else ";"
    return ["sh", "-c", f"i=0; while [ $i -lt {n} ]; do {cmd}{sep} i=$((i + 1)); done; wait"]


def bgrun_ids(path):
    with open(path) as f:
        ids = [line.split()[0] for line in f if line.strip()]
    os.remove(path)
    return ids


def bgrun_wait(ids, store):
    run([bgrun("job"), "wait", "--timeout", "10m"] + ids, env_with(RUN_DIR=store), stdout=subprocess.DEVNULL,
        seconds=900)


def fill(total, batch):
    """Fills a store to `total` jobs, `batch` launches at a time (a shell
    starts them all with `&`, then `wait`s): the time of each batch's
    launches, bgrun's `run true` and tsp's `tsp true` taking turns batch by
    batch, in ABBA order. Between batches (not timed) the batch's jobs are
    waited for, so that no batch pays for the last one's jobs. tsp's server
    keeps `total` finished jobs (TS_MAXFINISHED): its socket, tsp-fill.sock,
    is listed by `tsp -l` afterwards."""
    store = os.path.join(TMP, "scale-fill")
    os.makedirs(store, mode=0o700, exist_ok=True)
    sock = os.path.join(TMP, "tsp-fill.sock")
    tenv = env_with(TS_SOCKET=sock, TS_MAXFINISHED=str(total))
    out(["tsp", "-S", "1"], tenv)
    benv = env_with(RUN_DIR=store)
    ids_file = os.path.join(TMP, "fill.ids")
    rate = {"bgrun": [], "tsp": []}
    rounds = total // batch
    for i in range(rounds):
        for tool in abba(["bgrun", "tsp"], i):
            if tool == "bgrun":
                argv, env = shell_loop(batch, f"'{bgrun('run')}' true >>'{ids_file}'", True), benv
            else:
                argv, env = shell_loop(batch, "tsp true >/dev/null", True), tenv
            t0 = time.monotonic()
            run(argv, env, stdout=subprocess.DEVNULL, seconds=300)
            rate[tool].append(batch / (time.monotonic() - t0))
            if tool == "bgrun":
                ids = bgrun_ids(ids_file)
                if len(ids) != batch:
                    raise SystemExit(f"probe: {batch} launches of run printed {len(ids)} ids")
                bgrun_wait(ids, store)
            else:
                run(["tsp", "-w"], tenv, stdout=subprocess.DEVNULL, seconds=300)
    tenth = max(1, rounds // 10)
    for tool, rates in rate.items():
        whole = total / sum(batch / r for r in rates)
        save(f"scale.fill.{tool}", "jobs/s", rates, f"{rounds * batch:,} jobs in batches of {batch}: {whole:.0f} jobs/s"
             " overall")
        save(f"scale.fill.{tool}.first", "jobs/s", rates[:tenth], f"batches 1-{tenth}")
        save(f"scale.fill.{tool}.last", "jobs/s", rates[-tenth:], f"batches {rounds - tenth + 1}-{rounds}")
    listed = out(["tsp", "-l"], tenv).count("\n") - 1
    if listed < total:
        raise SystemExit(f"probe: tsp -l lists {listed} jobs, not the {total} finished")


def sflow(jobs, rounds):
    """JOBS `true` jobs launched from a shell's loop into 2 slots, from the
    first launch to the last end, jobs/s; `rounds` rounds, the tools in ABBA
    order, each round on a fresh store (bgrun), server (tsp -S 2), queue
    directory (nq: one slot, it has no slots) or daemon (pueue, parallel 2,
    where installed)."""
    tools = ["bgrun", "tsp", "nq"] + (["pueue"] if have("pueue") and have("pueued") else [])
    res = {t: [] for t in tools}
    for r in range(rounds):
        for tool in abba(tools, r):
            if tool == "bgrun":
                store = os.path.join(TMP, f"scale-flow-{r}")
                env = env_with(RUN_DIR=store)
                run([bgrun("job"), "queue", "flow", "--slots", "2"], env, stdout=subprocess.DEVNULL)
                ids_file = os.path.join(TMP, "flow.ids")
                t0 = time.monotonic()
                run(shell_loop(jobs, f"'{bgrun('run')}' -q flow true >>'{ids_file}'"), env, seconds=900)
                bgrun_wait(bgrun_ids(ids_file), store)
            elif tool == "tsp":
                env = env_with(TS_SOCKET=os.path.join(TMP, f"tsp-flow-{r}.sock"))
                run(["tsp", "-S", "2"], env)
                t0 = time.monotonic()
                run(shell_loop(jobs, "tsp true >/dev/null"), env, seconds=900)
                run(["tsp", "-w"], env, stdout=subprocess.DEVNULL, seconds=900)
            elif tool == "nq":
                nqdir = os.path.join(TMP, f"nq-flow-{r}")
                os.makedirs(nqdir)
                env = env_with(NQDIR=nqdir)
                t0 = time.monotonic()
                run(shell_loop(jobs, "nq true >/dev/null"), env, seconds=900)
                run(["nq", "-w"], env, stdout=subprocess.DEVNULL, seconds=900)
            else:
                env, cfg = pueue_env(f"flow-{r}")
                run(["pueue", "-c", cfg, "parallel", "2"], env)
                t0 = time.monotonic()
                run(shell_loop(jobs, f"pueue -c '{cfg}' add -- true >/dev/null"), env, seconds=900)
                run(["pueue", "-c", cfg, "wait"], env, stdout=subprocess.DEVNULL, seconds=900)
            res[tool].append(jobs / (time.monotonic() - t0))
            if tool == "tsp":
                run(["tsp", "-K"], env, stdout=subprocess.DEVNULL)
            elif tool == "pueue":
                run(["pueue", "-c", cfg, "shutdown"], env, stdout=subprocess.DEVNULL)
    for tool, rates in res.items():
        save(f"scale.flow.{tool}", "jobs/s", rates, f"{jobs} jobs, {rounds} rounds")


def chain(n, max_s):
    """An `--after` chain of n `true` jobs behind a head job that runs until
    released: `run --after PREV true`, each after the previous, all waiting
    (none can start); the time of each launch (the command's whole run,
    from here). Stops after max_s seconds. Saves, for the 1st launch and
    every tenth of n, the launches of a window ending there."""
    store = os.path.join(TMP, "scale-chain")
    env = env_with(RUN_DIR=store)
    go = os.path.join(TMP, "chain-go")
    head = launch_bgrun(["sh", "-c", f"while [ ! -e '{go}' ]; do sleep 0.1; done"], store)
    prev, times = head, []
    end = time.monotonic() + max_s
    while len(times) < n and time.monotonic() < end:
        t0 = time.perf_counter()
        text = out([bgrun("run"), "--after", prev, "true"], env)
        times.append((time.perf_counter() - t0) * 1000)
        words = text.split()
        if len(words) < 2 or words[1] != "queued":
            raise SystemExit(f"probe: run --after {prev} true: not queued: {text.strip()}")
        prev = words[0]
    # The head (and its watcher) killed without an end recorded: nothing
    # decides for the chain again, no job of it starts or is skipped.
    with open(os.path.join(store, head, "meta.json")) as f:
        meta = json.load(f)
    for pid in (meta["watcher_pid"], meta["pid"]):
        kill_group(pid)
    w = max(1, min(50, n // 20))
    marks = [1] + [n * k // 10 for k in range(1, 11)]
    for k in marks:
        if k > len(times):
            break
        lo = 1 if k == 1 else max(1, k - w + 1)
        hi = w if k == 1 else k
        save(f"scale.chain.{k}", "ms", times[lo - 1 : hi], f"launches {lo:,}–{hi:,} of {n:,}")
    done = f"all {n:,}" if len(times) == n else f"stopped after {max_s:.0f} s at launch {len(times):,} of {n:,}"
    save("scale.chain.all", "ms", times, done)


def peakmem(key, runs, argv):
    """The peak RSS (KiB, /usr/bin/time's %M) of argv, runs times."""
    kib = []
    for _ in range(runs):
        run(["/usr/bin/time", "-f", "%M", "-o", os.path.join(TMP, "time.out")] + argv, stdout=subprocess.DEVNULL,
            seconds=300)
        with open(os.path.join(TMP, "time.out")) as f:
            kib.append(float(f.read().split()[-1]))
    save(key, "KiB", kib, " ".join(os.path.basename(a) if a.startswith("/") else a for a in argv))


def rmall(store, key):
    """`runrm` of every job of a store, timed once; then how many files
    `.ids` holds (the ids of removed jobs kept)."""
    n = sum(1 for e in os.listdir(store) if not e.startswith("."))
    t0 = time.monotonic()
    run([bgrun("runrm")], env_with(RUN_DIR=store), stdout=subprocess.DEVNULL, seconds=3600)
    secs = time.monotonic() - t0
    left = [e for e in os.listdir(store) if not e.startswith(".")]
    if left:
        raise SystemExit(f"probe: runrm left {len(left)} of {n} jobs in {store}")
    ids = os.path.join(store, ".ids")
    kept = sum(len(files) for _, _, files in os.walk(ids)) if os.path.isdir(ids) else 0
    save(key, "ms", [secs * 1000], f"{n:,} jobs")
    save(key + ".ids", "files", [kept], f"after removing {n:,} jobs")


# --- the table ------------------------------------------------------------------


def load(key):
    try:
        with open(os.path.join(RES, key + ".json")) as f:
            r = json.load(f)
    except FileNotFoundError:
        return None
    s = r["samples"]
    return {"unit": r["unit"], "med": statistics.median(s), "min": min(s), "max": max(s), "n": len(s), "note": r["note"],
            "samples": s}


def num(v, unit):
    if unit == "ms":
        if v >= 1000:
            return f"{v / 1000:.2f} s"
        return f"{v:.3g} ms" if v >= 1 else f"{v:.2f} ms"
    if unit == "KiB":
        return f"{v:,.0f} KiB"
    if unit == "MiB":
        return f"{v:.1f} MiB"
    if unit == "s":
        return f"{v:.0f} s"
    if unit == "jobs/s":
        return f"{v:,.0f} jobs/s"
    if unit == "files":
        return f"{v:,.0f} files"
    return f"{v:g} {unit}"


def fig(r):
    if r is None:
        return "not measured"
    if r["n"] == 1:
        return num(r["med"], r["unit"])
    lo, hi = num(r["min"], r["unit"]), num(r["max"], r["unit"])
    unit = " " + r["unit"] if r["unit"] in ("ms", "KiB", "jobs/s") else ""
    if unit and lo.endswith(unit) and hi.endswith(unit):
        lo, hi = lo[: -len(unit)], hi[: -len(unit)]
    return f"{num(r['med'], r['unit'])} ({lo}–{hi})"


def ratio(a, b):
    return a["med"] / b["med"] if a and b and b["med"] else None


def paired(a, b):
    """The ratios of a's samples to b's taken in the same round (or pair of
    an ABBA sequence), when the two were measured so: same count, in step.
    None otherwise."""
    if not a or not b or a["n"] != b["n"] or a["n"] < 2 or not all(b["samples"]):
        return None
    return [x / y for x, y in zip(a["samples"], b["samples"])]


def spread_of(rr, how):
    """How the same-round ratios spread: min–max over rounds, or the middle
    half (quartiles) over many pairs."""
    m = statistics.median(rr)
    if how == "round":
        return f"by round: {m:.2f}×, {min(rr):.2f}–{max(rr):.2f}"
    q = statistics.quantiles(rr) if len(rr) >= 4 else [min(rr), m, max(rr)]
    return f"by pair: {m:.2f}×, middle half {q[0]:.2f}–{q[2]:.2f}"


def table(dest):
    rows = []

    def row(section, what, key, base_label=None, base_key=None, target="", check=None, value=None, by=None):
        a = load(key) if key else None
        b = load(base_key) if base_key else None
        if key and a is None:
            return
        r = ratio(a, b)
        verdict = ""
        if check:
            verdict = check(a, b, r)
        base = f"{base_label}: {fig(b)}" if base_label else ""
        rat = f"{r:.2f}×" if r is not None else ""
        rr = paired(a, b) if by else None
        if rr:
            rat += f" ({spread_of(rr, by)})"
        rows.append((section, what, value if value is not None else fig(a), base, rat, target, verdict))

    def below(limit, unit_text):
        def check(a, _b, _r):
            m = a["med"]
            if m < limit:
                return "met"
            return f"**missed** by {m - limit:.3g} {unit_text} ({m / limit:.2f}× the target)"

        return check

    def ratio_below(limit):
        def check(_a, _b, r):
            if r is None:
                return ""
            if r < limit:
                return "met"
            return f"**missed**: {r:.2f}× vs {limit:g}× ({(r / limit - 1) * 100:.0f} % over)"

        return check

    def median_round_below(limit):
        def check(a, b, r):
            if r is None:
                return ""
            m = statistics.median(paired(a, b) or [r])
            if m <= limit:
                return "met"
            return f"**missed**: the rounds' median {m:.2f}× vs {limit:g}×"

        return check

    def every_round_below(limit):
        def check(a, b, r):
            if r is None:
                return ""
            rr = paired(a, b) or [r]
            over = sum(1 for x in rr if x > limit)
            if r <= limit and not over:
                return "met"
            return f"**missed**: {r:.2f}× the median; over {limit:g}× in {over} of {len(rr)} rounds"

        return check

    floor = "nohup (floor)"
    row("1 Launch", "`run true`", "launch.run_true", floor, "launch.floor")
    # The launch targets (issue 24) are on what a script waits for: the loop rows.
    row("1 Launch", "`run true` vs nq", "launch.run_true", "`nq true`", "launch.nq")
    row("1 Launch", "`run true` vs tsp", "launch.run_true", "`tsp true`", "launch.tsp")
    row("1 Launch", "`run true` vs nq, both on a tmpfs", "launch.run_true_tmpfs", "`nq true`", "launch.nq_tmpfs")
    row("1 Launch", "`run --name tN true`: a new id each time (no retry)", "launch.run_fresh", "`run true`",
        "launch.run_true")
    row("1 Launch", "`run true`, isolated (50 ms apart) vs nq", "launch.run_isolated", "`nq true`",
        "launch.nq_isolated")
    row("1 Launch", "`id=$(run true)` in a script's loop (per launch) vs nq", "launch.run_loop", "`id=$(nq true)`",
        "launch.nq_loop", "≤ 1.25× nq", ratio_below(1.25 + 1e-9))
    row("1 Launch", "`id=$(run true)` in a script's loop, both on a tmpfs", "launch.run_loop_tmpfs",
        "`id=$(nq true)`", "launch.nq_loop_tmpfs", "≤ nq", ratio_below(1 + 1e-9))
    row("1 Launch", "`run true` in a script's loop (per launch) vs tsp", "launch.run_loop", "`tsp true`",
        "launch.tsp_loop")
    row("1 Launch", "`run sleep 60`", "launch.run_sleep", floor, "launch.floor")
    row("1 Launch", "`nq true`", "launch.nq", floor, "launch.floor")
    row("1 Launch", "`tsp true`", "launch.tsp", floor, "launch.floor")
    row("2 Exit → visible", "`status` published, confirmed by `runs --json`", "visible.bgrun",
        "nq lock released", "visible.nq", "< 2 ms", below(2, "ms"), by="pair")
    row("2 Exit → visible", "`status` published, vs nq's record of the exit status", "visible.bgrun",
        "nq `[exited with status N.]` written", "visible.nq_status", "< 1.5× nq's record", ratio_below(1.5),
        by="pair")
    row("2 Exit → visible", "polling `runs --json` (until a call returns showing it)", "poll.bgrun",
        "polling `tsp -s`", "poll.tsp", "bgrun first", ratio_below(1))
    row("3 Wait wake-up", "`job wait ID` returns", "wake.bgrun", "`tsp -w`", "wake.tsp", "< 20 ms", below(20, "ms"))
    row("3 Wait wake-up", "`job wait ID` vs nq", "wake.bgrun", "`nq -w`", "wake.nq")
    row("3 Wait wake-up", "`job wait ID` of a job already ended", "wake.ended", "`job status ID`", "wake.status")
    for n in ("100", "1000", "10000"):
        row("4 Listing", f"`runs`, {int(n):,} finished jobs", f"list.runs.{n}")
        target, check = ("< 100 ms", below(100, "ms")) if n == "10000" else ("", None)
        row("4 Listing", f"`runs --json`, {int(n):,} finished jobs", f"list.json.{n}", target=target, check=check)
    row("4 Listing", "`runs`: 10,000 vs 1,000 jobs", "list.runs.10000", "1,000", "list.runs.1000", "< 12×", ratio_below(12))
    row("4 Listing", "`runs --json`: 10,000 vs 1,000 jobs", "list.json.10000", "1,000", "list.json.1000", "< 12×",
        ratio_below(12))
    for big in ("10000", "1000"):
        row("4 Listing", f"`run true` into {int(big):,} jobs vs an empty store", f"launch.store{big}",
            "empty store", "launch.store0", "≤ 1.1×", ratio_below(1.1 + 1e-9))
    row("5 Memory", "PSS per running job (watcher)", "mem.bgrun.pss", "nq", "mem.nq.pss",
        "< 1 MiB; aim: nq's", below(1024, "KiB"))
    row("5 Memory", "PSS per running job vs tsp", "mem.bgrun.pss", "tsp", "mem.tsp.pss")
    row("5 Memory", "RSS per running job (watcher)", "mem.bgrun.rss", "nq", "mem.nq.rss")
    row("5 Memory", "RSS per running job vs tsp", "mem.bgrun.rss", "tsp", "mem.tsp.rss")
    size = load("out.size")
    label = f"{size['med'] / 2**30:g} GiB" if size and size["med"] >= 2**30 else (
        f"{size['med'] / 2**20:g} MiB" if size else "")
    row("6 Output", f"{label} to stdout, launch → recorded end", "out.bgrun", "straight to a file", "out.plain",
        "rounds' median ≤ 1.05×", median_round_below(1.05 + 1e-9), by="round")
    row("6 Output", f"{label} to stdout under `--log-max {CAP}`", "out.bgrun_cap", "straight to a file", "out.plain",
        by="round")
    row("6 Output", f"{label} under `--log-max {CAP}` vs uncapped", "out.bgrun_cap", "uncapped", "out.bgrun",
        by="round")
    row("6 Output", f"{label} through nq", "out.nq", "straight to a file", "out.plain", by="round")
    row("6 Output", f"{label} through tsp", "out.tsp", "straight to a file", "out.plain", by="round")
    row("6 Output", f"{label} straight to a file again (the disk's own noise)", "out.again", "straight to a file",
        "out.plain", "≤ 1.05× every round", every_round_below(1.05 + 1e-9), by="round")
    row("8 Queues", "`run -q Q true`, queue paused (queueing alone)", "queue.launch_paused", "`run true`",
        "queue.run_true", "≤ `run true`", ratio_below(1 + 1e-9))
    row("8 Queues", "`run -q Q true`, a free slot (starts at once)", "queue.launch_free", "`run true`",
        "queue.run_true", "≤ `run true`", ratio_below(1 + 1e-9))
    row("8 Queues", "`run -q Q true` (free slot) vs `nq true`", "queue.launch_free", "`nq true`", "queue.nq")
    row("8 Queues", "`run -q Q true` (free slot) vs `tsp true` (-S 2)", "queue.launch_free", "`tsp true`", "queue.tsp")
    row("8 Queues", "`run -q Q true` (free slot) vs `pueue add true`", "queue.launch_free", "`pueue add`",
        "queue.pueue")
    row("8 Queues", "slot freed → next job started (1 slot)", "queue.delay.bgrun", "nq", "queue.delay.nq",
        "< 5 ms", below(5, "ms"))
    row("8 Queues", "slot freed → next job started, vs tsp -S 1", "queue.delay.bgrun", "tsp", "queue.delay.tsp")
    row("8 Queues", "slot freed → next job started, vs pueue", "queue.delay.bgrun", "pueue", "queue.delay.pueue")
    flow = load("queue.flow.bgrun")
    jobs_note = f" ({flow['note']})" if flow and flow["note"] else ""
    row("8 Queues", f"`true` jobs through 2 slots, ended jobs in the store, jobs/s{jobs_note}", "queue.flow.bgrun",
        "tsp -S 2", "queue.flow.tsp", "ahead of tsp",
        lambda _a, _b, r: "" if r is None else ("met" if r > 1 else f"**missed**: {r:.2f}× tsp's rate"))
    row("8 Queues", "the same vs nq (one slot: it has no slots)", "queue.flow.bgrun", "nq", "queue.flow.nq")
    row("8 Queues", "the same vs pueue (parallel 2)", "queue.flow.bgrun", "pueue", "queue.flow.pueue")
    row("7 Binary", "release size of `run` (= runs, runrm, job)", "bin.run")
    row("7 Binary", "release size of `runlog` (links skim)", "bin.runlog")
    row("7 Binary", "clean release build (`cargo build --release --locked`)", "build.time")
    scale_rows(row, rows, ratio_below)

    head = ["Section", "Measure", "bgrun: median (min–max)", "Baseline, same run", "Ratio", "Target", "Verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(r) + " |")
    notes = []
    for key in ("visible.bgrun", "poll.bgrun", "poll.tsp", "mem.bgrun.pss", "mem.nq.pss", "mem.tsp.pss",
                "out.bgrun_cap", "scale.fill.bgrun", "scale.fill.tsp", "scale.chain.all"):
        r = load(key)
        if r and r["note"]:
            notes.append(f"- `{key}`: {r['note']}; {r['n']} samples.")
    text = "\n".join(lines) + "\n"
    with open(dest, "w") as f:
        f.write(text)
        if notes:
            f.write("\n" + "\n".join(notes) + "\n")
    print(text, end="")


def sizes_of(prefix):
    """The sizes N of the saved keys PREFIX.N, in order."""
    found = set()
    for f in os.listdir(RES):
        rest = f[len(prefix) + 1 : -len(".json")] if f.startswith(prefix + ".") and f.endswith(".json") else ""
        if rest.isdigit():
            found.add(int(rest))
    return sorted(found)


def scale_rows(row, rows, ratio_below):
    """Section 9's rows, for the sizes measured; the targets of issue 24
    where the size is the issue's."""
    sec = "9 Scale"

    def below(limit):
        def check(a, _b, _r):
            m = a["med"]
            if m <= limit:
                return "met"
            return f"**missed** by {num(m - limit, a['unit'])} ({m / limit:.2f}× the target)"

        return check

    def at_least(_a, _b, r):
        if r is None:
            return ""
        return "met" if r >= 1 else f"**missed**: {r:.2f}× tsp's rate"

    def note(key):
        r = load(key)
        return r["note"] if r else ""

    row(sec, f"filling a store, {note('scale.fill.bgrun').split(':')[0]}: jobs/s per batch", "scale.fill.bgrun",
        "tsp (1 slot)", "scale.fill.tsp", "≥ tsp", at_least, by="round")
    for tool, label in (("bgrun", "bgrun"), ("tsp", "tsp")):
        row(sec, f"filling: {label}'s last tenth of the batches vs its first", f"scale.fill.{tool}.last",
            "first tenth", f"scale.fill.{tool}.first")
    flow = note("scale.flow.bgrun")
    row(sec, f"`true` jobs from a loop through 2 slots, first launch → all ended ({flow})", "scale.flow.bgrun",
        "tsp -S 2", "scale.flow.tsp", "≥ tsp", at_least, by="round")
    row(sec, "the same vs nq (one slot: it has no slots)", "scale.flow.bgrun", "nq", "scale.flow.nq", by="round")
    row(sec, "the same vs pueue (parallel 2)", "scale.flow.bgrun", "pueue", "scale.flow.pueue", by="round")
    row(sec, "`run -q Q true`, one launch on a fresh store", "scale.fresh.q", "`run true`, fresh store",
        "scale.fresh.run", "≤ 1.1× `run true`", ratio_below(1.1 + 1e-9))
    marks = sizes_of("scale.chain")
    whole = note("scale.chain.all")
    if marks:
        n = int(whole.split(" of ")[-1].replace(",", "")) if " of " in whole else marks[-1]
        for k in marks:
            target, check = ("≤ 1.2× the first", ratio_below(1.2 + 1e-9)) if k == n else ("", None)
            base = (note("scale.chain.1").split(" of ")[0], "scale.chain.1") if k > 1 else (None, None)
            row(sec, f"`run --after PREV true`, a chain of {n:,}: launch {k:,} ({note(f'scale.chain.{k}')})",
                f"scale.chain.{k}", base[0], base[1], target, check)
        if marks[-1] < n:
            rows.append((sec, f"`run --after PREV true`, a chain of {n:,}: launch {n:,}", f"not reached: {whole}", "",
                         "", "≤ 1.2× the first", "**missed**: not reached"))
    tsp_sizes = set(sizes_of("scale.tsp_list"))
    for n in sizes_of("scale.json"):
        big = n >= 100000
        if n in tsp_sizes:
            row(sec, f"`runs --json`, {n:,} ended jobs", f"scale.json.{n}", f"`tsp -l`, {n:,} finished",
                f"scale.tsp_list.{n}", "≤ `tsp -l`", ratio_below(1 + 1e-9))
        if big or n not in tsp_sizes:
            target, check = ("≤ 300 ms", below(300)) if big else ("", None)
            row(sec, f"`runs --json`, {n:,} ended jobs", f"scale.json.{n}", target=target, check=check)
        target, check = ("≤ 64 MiB", below(65536)) if big else ("", None)
        row(sec, f"`runs --json`, {n:,} ended jobs: peak memory (max RSS)", f"scale.mem.{n}", target=target,
            check=check)
        row(sec, f"`runs -n 20`, {n:,} ended jobs", f"scale.last20.{n}", target="≤ 20 ms",
            check=below(20))
        row(sec, f"`runlog NAME --no-follow`, {n:,} ended jobs", f"scale.log.{n}", target="≤ 20 ms",
            check=below(20))
    for n in sizes_of("scale.rm"):
        target, check = ("≤ 30 s", below(30000)) if n >= 100000 else ("", None)
        row(sec, f"`runrm` of all {n:,} ended jobs (once)", f"scale.rm.{n}", target=target, check=check)
        row(sec, f"files left in `.ids` after removing {n:,} jobs", f"scale.rm.{n}.ids",
            target="bounded: < 1 per 100 removed",
            check=lambda a, _b, _r, n=n: "met" if a["med"] * 100 < n else f"**missed**: {a['med']:,.0f} files")
    legacy = sizes_of("scale.legacy")
    if legacy:
        big = legacy[-1]
        row(sec, f"`runs`, {big:,} pairs of the old scripts' files", f"scale.legacy.{big}", target="≤ 100 ms",
            check=below(100) if big >= 40000 else None)
        for small in legacy[:-1]:
            row(sec, f"`runs`, old scripts' files: {big:,} vs {small:,} pairs", f"scale.legacy.{big}", f"{small:,}",
                f"scale.legacy.{small}", f"linear: < {1.2 * big / small:g}×", ratio_below(1.2 * big / small))


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "hf":
        hf(args[0], args[1:])
    elif cmd == "mkstore":
        mkstore(args[0], args[1], int(args[2]))
    elif cmd == "visible":
        visible(int(args[0]))
    elif cmd == "poll":
        poll(int(args[0]))
    elif cmd == "wake":
        wake(int(args[0]))
    elif cmd == "throughput":
        save("out.size", "B", [int(args[0])])
        throughput(int(args[0]), int(args[1]))
    elif cmd == "memory":
        memory(int(args[0]))
    elif cmd == "qdelay":
        qdelay(int(args[0]))
    elif cmd == "qflow":
        qflow(int(args[0]), args[1])
    elif cmd == "legacy":
        legacy_store(args[0], int(args[1]))
    elif cmd == "fill":
        fill(int(args[0]), int(args[1]))
    elif cmd == "sflow":
        sflow(int(args[0]), int(args[1]))
    elif cmd == "chain":
        chain(int(args[0]), float(args[1]))
    elif cmd == "peakmem":
        peakmem(args[0], int(args[1]), args[2:])
    elif cmd == "rmall":
        rmall(args[0], args[1])
    elif cmd == "stop-bgrun":
        stop_bgrun(args[0])
    elif cmd == "reap":
        reap()
    elif cmd == "save":
        save(args[0], args[1], [float(v) for v in args[2:]])
    elif cmd == "scale":
        scale(args[0], float(args[1]))
    elif cmd == "merge":
        merge(args[0], args[1:])
    elif cmd == "table":
        table(args[0])
    else:
        raise SystemExit(f"probe: unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
