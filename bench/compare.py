#!/usr/bin/env python3
"""Compare spindle's benchmarks with the Go reference, side by side, in one run.

Suite mode (default):
  1. copies the Go anchors (../shared/anchors/go, or --anchors) to a temporary
     directory and builds cmd/suite, cmd/echoserver and cmd/loadgen there;
  2. runs spindle_bench (Google Benchmark, JSON output) and the Go suite with
     the same number of repetitions, workload by workload, alternating which
     of the two goes first;
  3. prints a Markdown table: spindle median, Go median, spindle/Go ratio, the
     goal where one is known (the goals of the issues that asked for each workload) and the min-max
     spread of both.

TCP echo mode (--tcp-echo): spindle's echo server sample and Go's echo server,
in turn, each driven by Go's load generator (cmd/loadgen).

Standard library only. See bench/README.md.
"""

import argparse
import json
import math
import mmap
import os
import re
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---------------------------------------------------------------------------
# What is compared with what.
#
# Row(label, spindle benchmark, spindle metric, Go workload, Go figure, unit,
#     goal, higher_is_better)
#   spindle metric: "time" (real time per iteration) or a user counter name.
#   Go figure: the figure name printed by anchors/go/cmd/suite (its -json).
#   unit: "time" (values in ns, printed with a scaled unit) or a unit label.
#   goal: ("ratio", x)  spindle/Go must be <= x (or >= x if higher is better)
#         ("abs", x)    spindle's value must be <= x (same unit as the row)
# ---------------------------------------------------------------------------


class Row:
    def __init__(self, sp, metric, go, go_fig, unit="time", goal=None, higher=False, note=""):
        self.sp, self.metric, self.go, self.go_fig = sp, metric, go, go_fig
        self.unit, self.goal, self.higher, self.note = unit, goal, higher, note


T = "time/iter"
ROWS = [
    # S: scheduler micro-benchmarks, time per iteration.
    Row("spawn_one", "time", "spawn_one/locked_thread", T, goal=("ratio", 1.0),
        note="spindle from a plain thread; Go from a goroutine locked to its OS thread"),
    Row("spawn_one/from_fiber", "time", "spawn_one", T, goal=("ratio", 1.0),
        note="spindle from a fiber; Go from the main goroutine"),
    Row("spawn_many", "time", "spawn_many/locked_thread", T, goal=("ratio", 0.5),
        note="spindle from a plain thread; Go from a locked goroutine"),
    Row("spawn_many/from_fiber", "time", "spawn_many", T, goal=("ratio", 0.5),
        note="spindle from a fiber; Go from the main goroutine"),
    Row("yield_now", "time", "yield_now", T, goal=("ratio", 0.4)),
    Row("spawn_recursive", "time", "spawn_recursive", T, goal=("ratio", 0.5)),
    Row("ping_pong", "time", "ping_pong", T, goal=("ratio", 0.7)),
    Row("fanout", "time", "fanout", T, goal=("ratio", 0.7)),
    Row("context_switch_quiet", "time", "context_switch_quiet", T, goal=("ratio", 0.7)),
    Row("context_switch_busy", "time", "context_switch_busy", T, goal=("ratio", 1.0)),
    # R: runtime behaviour, user counters.
    Row("blocking_handoff", "p50_lateness_us", "blocking_handoff", "lateness p50", "µs"),
    Row("blocking_handoff", "p99_lateness_us", "blocking_handoff", "lateness p99", "µs", goal=("abs", 1000)),
    Row("blocking_handoff", "max_lateness_us", "blocking_handoff", "lateness max", "µs", goal=("abs", 5000)),
    Row("blocking_handoff", "max_threads", "blocking_handoff", "OS threads created (cumulative)", "threads",
        note="Go: threads created since start, not the peak"),
    Row("cpu_hog", "p50_lateness_us", "cpu_hog", "lateness p50", "µs"),
    Row("cpu_hog", "p99_lateness_us", "cpu_hog", "lateness p99", "µs", goal=("abs", 5000)),
    Row("cpu_hog", "max_lateness_us", "cpu_hog", "lateness max", "µs", goal=("abs", 15000)),
    Row("cpu_hog", "max_threads", "cpu_hog", "OS threads created (cumulative)", "threads",
        note="Go: threads created since start, not the peak"),
    Row("idle_cpu", "cpu_per_wall", "idle_cpu", "CPU time / wall time", "cores", goal=("ratio", 0.5)),
    Row("idle_cpu", "round_trips_per_s", "idle_cpu", "round trips per second", "1/s", higher=True),
    Row("parked_memory", "rss_per_fiber_bytes", "parked_memory", "RSS per parked goroutine", "B", goal=("abs", 6144)),
    Row("parked_memory", "spawn_all_ms", "parked_memory", "spawn all (until every goroutine ran)", "ms", goal=("ratio", 1.0)),
    Row("parked_memory", "wake_all_ms", "parked_memory", "wake all and wait", "ms"),
    Row("timers", "wall_over_ideal", "timers", "wall time / ideal", "ratio", goal=("ratio", 1.0)),
    Row("timers", "cpu_ms", "timers", "CPU time", "ms", goal=("ratio", 1.0)),
    Row("timers", "mean_lateness_us", "timers", "mean lateness", "µs"),
    Row("tcp_echo", "req_per_s", "tcp_echo", "requests per second", "1/s", higher=True, goal=("ratio", 1.2)),
    Row("tcp_echo", "p50_us", "tcp_echo", "latency p50", "µs"),
    Row("tcp_echo", "p99_us", "tcp_echo", "latency p99", "µs", goal=("ratio", 1.0)),
    Row("tcp_echo", "errors", "tcp_echo", "errors", "count"),
]

UNIT_NS = {"ns": 1.0, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9}

# Keys of a Google Benchmark JSON entry that are not user counters.
GB_KEYS = {
    "name", "family_index", "per_family_instance_index", "run_name", "run_type",
    "repetitions", "repetition_index", "threads", "iterations", "real_time",
    "cpu_time", "time_unit", "aggregate_name", "aggregate_unit", "error_occurred",
    "error_message", "label", "bytes_per_second", "items_per_second", "big_o", "rms",
}
# Suffixes Google Benchmark appends to a benchmark's name for its options.
GB_SUFFIX = re.compile(
    r"^(real_time|manual_time|process_time|iterations:\d+|repeats:\d+|threads:\d+|"
    r"min_time:[0-9.e+-]+s?|min_warmup_time:[0-9.e+-]+s?)$")
# A spread (max - min) above this fraction of the median is flagged as wide.
WIDE = 0.25
# Workloads measured only with every repetition in a fresh process, whatever
# the mode: parked_memory's resident-memory delta is near zero once a first
# repetition in the same process has left its stacks (or Go's heap) behind.
FRESH_ONLY = {"parked_memory"}


def log(*a):
    print("#", *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------

def num(v):
    """About four significant digits, like the Go suite prints."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 10:
        return f"{v:.2f}"
    if a >= 1:
        return f"{v:.3f}"
    return f"{v:.4f}"


def fmt_time(ns):
    if ns is None:
        return "n/a"
    a = abs(ns)
    if a >= 1e9:
        return num(ns / 1e9) + " s"
    if a >= 1e6:
        return num(ns / 1e6) + " ms"
    if a >= 1e3:
        return num(ns / 1e3) + " µs"
    return num(ns) + " ns"


def fmt_val(v, unit):
    if v is None:
        return "n/a"
    if unit == "time":
        return fmt_time(v)
    if unit in ("ratio", "count", "cores", "threads", ""):
        return num(v)
    return f"{num(v)} {unit}"


def fmt_spread(s, unit):
    if s is None:
        return "missing"
    if s.get("min") is not None and s.get("max") is not None:
        lo, hi = fmt_val(s["min"], unit), fmt_val(s["max"], unit)
        # Drop the repeated unit: "1.2 ms – 1.4 ms" -> "1.2 – 1.4 ms" when equal.
        lo_u, hi_u = lo.rpartition(" "), hi.rpartition(" ")
        if lo_u[1] and hi_u[1] and lo_u[2] == hi_u[2]:
            lo = lo_u[0]
        out = f"{lo} – {hi}"
        if s.get("n"):
            out += f" (n={s['n']})"
        med = s.get("median")
        if med and (s["max"] - s["min"]) / abs(med) > WIDE:
            out += " **wide**"
        return out
    if s.get("cv") is not None:
        return f"cv {100 * s['cv']:.1f}%"
    return ""


def summarize(values):
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": vals[0], "max": vals[-1], "n": len(vals)}


# ---------------------------------------------------------------------------
# spindle: Google Benchmark JSON
# ---------------------------------------------------------------------------

def normalize_name(name):
    parts = [p for p in name.split("/") if not GB_SUFFIX.match(p)]
    return "/".join(parts)


def entry_value(entry, metric):
    if metric == "time":
        t = entry.get("real_time")
        if t is None:
            return None
        if entry.get("aggregate_unit") == "percentage" or entry.get("aggregate_name") == "cv":
            return float(t)  # a fraction, not a time
        return float(t) * UNIT_NS.get(entry.get("time_unit", "ns"), 1.0)
    v = entry.get(metric)
    return float(v) if isinstance(v, (int, float)) else None


def parse_gb(doc):
    """Google Benchmark JSON -> {normalized name: {"agg": {name: entry},
    "reps": [entry], "error": str or None, "full": run name}}."""
    out = {}
    for e in doc.get("benchmarks", []):
        run_name = e.get("run_name")
        agg = e.get("aggregate_name")
        if run_name is None:  # old Google Benchmark: strip "_median" etc.
            run_name = e.get("name", "")
            if agg and run_name.endswith("_" + agg):
                run_name = run_name[: -len(agg) - 1]
        key = normalize_name(run_name)
        b = out.setdefault(key, {"agg": {}, "reps": [], "error": None, "full": run_name})
        if e.get("error_occurred"):
            b["error"] = e.get("error_message") or "error"
            continue
        if e.get("run_type") == "aggregate" or agg:
            b["agg"][agg] = e
        else:
            b["reps"].append(e)
    return out


def spindle_summary(b, metric):
    """Median, min, max (or cv) of one metric of one parsed benchmark."""
    if b is None:
        return None
    reps = [entry_value(e, metric) for e in b["reps"]]
    reps = [v for v in reps if v is not None]
    s = summarize(reps) if reps else None
    agg = b["agg"]
    med = entry_value(agg["median"], metric) if "median" in agg else None
    if med is None and s is None and "mean" in agg:
        med = entry_value(agg["mean"], metric)
    if med is None and s is None:
        return None
    res = dict(s) if s else {"median": med, "min": None, "max": None, "n": None}
    if med is not None:
        res["median"] = med
    for k in ("min", "max"):  # custom statistics (ComputeStatistics("min", ...))
        if k in agg and entry_value(agg[k], metric) is not None:
            res[k] = entry_value(agg[k], metric)
    if "cv" in agg:
        res["cv"] = entry_value(agg["cv"], metric)
    if res.get("n") is None:
        any_agg = next(iter(agg.values()), None)
        if any_agg and any_agg.get("repetitions"):
            res["n"] = any_agg["repetitions"]
    return res


def counters_of(b):
    e = b["agg"].get("median") or (b["reps"][0] if b["reps"] else None)
    if not e:
        return {}
    return {k: v for k, v in e.items() if k not in GB_KEYS and isinstance(v, (int, float))}


def gb_escape(name):
    return re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\1", name)


class Spindle:
    def __init__(self, args, tmp):
        self.path = args.spindle_bench
        self.args = args
        self.tmp = tmp
        self.results = {}
        self.missing_reason = None
        self.fixed = None
        if args.spindle_json:
            with open(args.spindle_json) as f:
                self.fixed = parse_gb(json.load(f))
        elif not (os.path.isfile(self.path) and os.access(self.path, os.X_OK)):
            self.missing_reason = f"{self.path} not found or not executable"
            log("spindle:", self.missing_reason)

    def list(self, regex):
        """Full benchmark names spindle_bench has that match regex."""
        if self.fixed is not None:
            return [v["full"] for k, v in self.fixed.items() if re.search(regex, k) or re.search(regex, v["full"])]
        if self.missing_reason:
            return []
        try:
            p = subprocess.run([self.path, "--benchmark_list_tests=true", f"--benchmark_filter={regex}"],
                               capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as e:
            self.missing_reason = f"cannot list benchmarks: {e}"
            log("spindle:", self.missing_reason)
            return []
        if p.returncode != 0:
            log(f"spindle: --benchmark_list_tests exited {p.returncode}: {p.stderr.strip()[-500:]}")
        return [l.strip() for l in p.stdout.splitlines() if l.strip()]

    def run(self, full_names, reps=None):
        """Runs the given benchmarks (full names) with args.reps repetitions,
        or, given `reps`, adds that many to those of earlier calls."""
        merge = reps is not None
        reps = reps or self.args.reps
        if self.fixed is not None:
            for n in full_names:
                k = normalize_name(n)
                if k in self.fixed:
                    self.results[k] = self.fixed[k]
            return
        if self.missing_reason or not full_names:
            return
        regex = "^(" + "|".join(gb_escape(n) for n in full_names) + ")$"
        out = os.path.join(self.tmp, "spindle_out.json")
        if os.path.exists(out):
            os.unlink(out)
        aggregates_only = "false" if self.args.all_reps or merge else "true"
        cmd = [self.path, "--benchmark_format=json", f"--benchmark_repetitions={reps}",
               f"--benchmark_report_aggregates_only={aggregates_only}", f"--benchmark_filter={regex}",
               f"--benchmark_out={out}", "--benchmark_out_format=json"] + shlex.split(self.args.spindle_args)
        log("spindle:", " ".join(shlex.quote(c) for c in cmd))
        t0 = time.time()
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True, timeout=self.args.timeout)
        except subprocess.TimeoutExpired:
            log(f"spindle: timed out after {self.args.timeout} s: {full_names}")
            p = None
        except OSError as e:
            log("spindle: cannot run:", e)
            p = None
        doc = None
        for src in (out, None):
            try:
                if src:
                    with open(src) as f:
                        doc = json.load(f)
                elif p is not None:
                    text = p.stdout
                    doc = json.loads(text[text.index("{"):])
                break
            except (OSError, ValueError):
                continue
        if p is not None and p.returncode != 0:
            log(f"spindle: exited with status {p.returncode}")
        if doc is None:
            log("spindle: no JSON results for", ", ".join(full_names))
            return
        for key, b in parse_gb(doc).items():
            if merge and key in self.results:
                self.results[key]["reps"] += b["reps"]
            else:
                self.results[key] = b
        log(f"spindle: {', '.join(full_names)} done in {time.time() - t0:.1f} s")

    def summary(self, name, metric):
        return spindle_summary(self.results.get(name), metric)


# ---------------------------------------------------------------------------
# Go anchors
# ---------------------------------------------------------------------------

class Go:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.bin = None
        self.results = {}   # workload -> {figure: [values]}
        self.units = {}     # (workload, figure) -> unit
        self.header = None
        self.version = None
        self.fixed = None
        self.missing_reason = None
        if args.go_json:
            with open(args.go_json) as f:
                self.fixed = json.load(f)
            self.header = self.fixed.get("_header")

    def build(self):
        if self.fixed is not None or self.bin or self.missing_reason:
            return
        if self.args.go_bin_dir:
            self.bin = self.args.go_bin_dir
            return
        go = shutil.which("go")
        if not go:
            self.missing_reason = "go not found (apt-get install golang-go)"
            log("go:", self.missing_reason)
            return
        src = self.args.anchors
        if not os.path.isfile(os.path.join(src, "go.mod")):
            self.missing_reason = f"no Go anchors at {src}"
            log("go:", self.missing_reason)
            return
        dst = os.path.join(self.tmp, "go")
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("bin"))
        env = dict(os.environ, GOPROXY="off", GOFLAGS="-mod=mod")
        if not _writable_cache():
            env["GOCACHE"] = os.path.join(self.tmp, "gocache")
        try:
            self.version = subprocess.run([go, "version"], capture_output=True, text=True).stdout.strip()
            log("go: building the anchors in", dst, f"({self.version})")
            subprocess.run([go, "build", "-o", "bin/", "./cmd/..."], cwd=dst, env=env, check=True,
                           stdout=sys.stderr, timeout=600)
        except (OSError, subprocess.SubprocessError) as e:
            self.missing_reason = f"go build failed: {e}"
            log("go:", self.missing_reason)
            return
        self.bin = os.path.join(dst, "bin")

    def exe(self, name):
        self.build()
        if not self.bin:
            return None
        p = os.path.join(self.bin, name)
        return p if os.path.isfile(p) else None

    def _ingest(self, raw, wanted=None, merge=False):
        for w, res in raw.items():
            if w.startswith("_") or not isinstance(res, dict) or (wanted and w not in wanted):
                continue
            figs = self.results.get(w, {}) if merge else {}
            for rep in res.get("reps") or []:
                for f in rep.get("figures") or []:
                    figs.setdefault(f["name"], []).append(f["value"])
                    self.units[(w, f["name"])] = f.get("unit", "")
            self.results[w] = figs

    def run(self, workloads, reps=None):
        """Runs the workloads with args.reps repetitions, or, given `reps`,
        adds that many to those of earlier calls."""
        merge = reps is not None
        reps = reps or self.args.reps
        if not merge:
            workloads = [w for w in workloads if w not in self.results]
        if not workloads:
            return
        if self.fixed is not None:
            self._ingest(self.fixed, set(workloads))
            return
        suite = self.exe("suite")
        if not suite:
            return
        out = os.path.join(self.tmp, "go_suite.json")
        if os.path.exists(out):
            os.unlink(out)
        cmd = [suite, "-only", ",".join(workloads), "-reps", str(reps), "-rreps", str(reps),
               "-json", out] + shlex.split(self.args.go_args)
        log("go:", " ".join(shlex.quote(c) for c in cmd))
        t0 = time.time()
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True, timeout=self.args.timeout)
            if p.returncode != 0:
                log(f"go: suite exited with status {p.returncode}")
        except subprocess.TimeoutExpired:
            log(f"go: suite timed out after {self.args.timeout} s")
        except OSError as e:
            log("go: cannot run the suite:", e)
        try:
            with open(out) as f:
                raw = json.load(f)
        except (OSError, ValueError):
            log("go: no results for", ", ".join(workloads))
            return
        self.header = raw.get("_header", self.header)
        self._ingest(raw, merge=merge)
        log(f"go: {', '.join(workloads)} done in {time.time() - t0:.1f} s")

    def summary(self, workload, figure, unit):
        vals = self.results.get(workload, {}).get(figure)
        if not vals:
            return None
        if unit == "time":
            u = self.units.get((workload, figure), "ns")
            vals = [v * UNIT_NS.get(u, 1.0) for v in vals]
        return summarize(vals)


def _writable_cache():
    if os.environ.get("GOCACHE"):
        return True
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    try:
        os.makedirs(base, exist_ok=True)
        return os.access(base, os.W_OK)
    except OSError:
        return False


# ---------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------

def ratio_and_verdict(row, sp, go):
    r = None
    if sp and go and go["median"]:
        r = sp["median"] / go["median"]
    goal, verdict = "", ""
    if row.goal:
        kind, x = row.goal
        if kind == "ratio":
            goal = f"{'≥' if row.higher else '≤'} {x:.1f}×"
            if r is not None:
                verdict = "yes" if (r >= x if row.higher else r <= x) else "**no**"
        else:
            goal = f"≤ {fmt_val(x, row.unit)} (absolute)"
            if sp:
                verdict = "yes" if sp["median"] <= x else "**no**"
    return r, goal, verdict


def table(rows, spindle, go, out):
    out.append("| workload | figure | spindle median | spindle min – max | Go median | Go min – max "
               "| spindle/Go | goal | met |")
    out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    notes = []
    for row in rows:
        sp = spindle.summary(row.sp, row.metric)
        g = go.summary(row.go, row.go_fig, row.unit)
        r, goal, verdict = ratio_and_verdict(row, sp, g)
        err = (spindle.results.get(row.sp) or {}).get("error")
        sp_med = fmt_val(sp["median"], row.unit) if sp else ("error" if err else "missing")
        go_med = fmt_val(g["median"], row.unit) if g else "missing"
        fig = "time/iter" if row.metric == "time" else f"`{row.metric}`"
        if row.go != row.sp:
            fig += f" (Go: `{row.go}`)"
        ratio = f"{r:.2f}×" if r is not None else ""
        if r is not None and row.higher:
            ratio += " (higher is better)"
        out.append(f"| {row.sp} | {fig} | {sp_med} | {fmt_spread(sp, row.unit) if sp else ''} | {go_med} "
                   f"| {fmt_spread(g, row.unit) if g else ''} | {ratio} | {goal} | {verdict} |")
        if err:
            notes.append(f"spindle `{row.sp}`: {err}")
        if row.note and (sp or g):
            notes.append(f"`{row.sp}` {fig}: {row.note}")
    return notes


def prewarm(gib):
    """Touches and frees `gib` GiB of memory, so that a process started next
    finds the pages it faults in already backed by the host (see
    --prewarm-gib)."""
    size = int(gib * (1 << 30)) // mmap.PAGESIZE * mmap.PAGESIZE
    if size <= 0:
        return
    memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    memory[::mmap.PAGESIZE] = b"\x01" * (size // mmap.PAGESIZE)
    memory.close()


def run_pair(spindle_step, go_step, go_first, prepare=lambda: None):
    """Runs both sides' steps, Go's first if go_first (callers alternate it),
    each after prepare()."""
    for step in (go_step, spindle_step) if go_first else (spindle_step, go_step):
        prepare()
        step()


def run_suite(args, tmp):
    spindle = Spindle(args, tmp)
    go = Go(args, tmp)
    filt = re.compile(args.filter)
    rows = [r for r in ROWS if filt.search(r.sp)]
    listed = spindle.list(args.filter)
    by_norm = {}
    for full in listed:
        by_norm.setdefault(normalize_name(full), []).append(full)
    mapped = {r.sp for r in ROWS}
    extra = [n for n in by_norm if n not in mapped]

    # Units of work: one spindle benchmark with the Go workloads it is compared with.
    units, seen = [], set()
    for r in rows:
        if r.sp in seen:
            continue
        seen.add(r.sp)
        units.append((r.sp, sorted({x.go for x in rows if x.sp == r.sp})))
    units += [(n, []) for n in extra]
    if not rows and not extra:
        log("nothing matches --filter", args.filter)
        return 1
    go.build()
    log(f"{len(units)} workloads; spindle has {len(by_norm)} matching benchmarks")

    def run_fresh(name, gows):
        for rep in range(args.reps):
            run_pair(lambda: spindle.run(by_norm.get(name, []), reps=1), lambda: go.run(gows, reps=1),
                     go_first=rep % 2, prepare=lambda: prewarm(args.prewarm_gib))

    shared = [(n, ws) for n, ws in units if n not in FRESH_ONLY]
    if args.no_interleave:
        spindle.run([f for n, _ in shared for f in by_norm.get(n, [])])
        go.run([w for _, ws in shared for w in ws])
    for i, (name, gows) in enumerate(units):
        if args.fresh_processes or name in FRESH_ONLY:
            run_fresh(name, gows)
        elif not args.no_interleave:
            run_pair(lambda: spindle.run(by_norm.get(name, [])), lambda: go.run(gows), go_first=i % 2)

    out = ["# spindle vs Go", ""]
    out.append(f"- spindle: `{args.spindle_json or args.spindle_bench}`"
               + (f" (**missing**: {spindle.missing_reason})" if spindle.missing_reason else ""))
    out.append(f"- Go: {go.header or go.version or ''}"
               + (f" (**missing**: {go.missing_reason})" if go.missing_reason else ""))
    if args.no_interleave:
        order = "one after the other"
    elif args.fresh_processes:
        order = "each in a fresh process, alternating which goes first each time"
        if args.prewarm_gib > 0:
            order += f", after touching {args.prewarm_gib:g} GiB"
    else:
        order = "workload by workload, alternating which goes first"
    fresh = sorted(n for n, _ in units if n in FRESH_ONLY)
    if fresh and not args.fresh_processes:
        order += f" ({', '.join(fresh)}: each repetition in a fresh process)"
    out.append(f"- {args.reps} repetitions each, {order}; "
               f"{os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    out.append("- ratio = spindle / Go on the medians; goals from the issues that asked for each workload")
    out.append("")
    notes = table(rows, spindle, go, out)
    if extra:
        out += ["", "## spindle benchmarks with no Go counterpart", "",
                "| benchmark | median | min – max | counters (median) |", "| --- | ---: | ---: | --- |"]
        for n in extra:
            s = spindle.summary(n, "time")
            b = spindle.results.get(n)
            c = ", ".join(f"{k}={num(v)}" for k, v in counters_of(b).items()) if b else ""
            out.append(f"| {n} | {fmt_val(s['median'], 'time') if s else 'missing'} | "
                       f"{fmt_spread(s, 'time') if s else ''} | {c} |")
    if notes:
        out += [""] + [f"- {n}" for n in notes]
    print("\n".join(out))
    if args.json_out:
        dump = {"spindle": {k: {m: spindle_summary(v, m) for m in ["time"] + list(counters_of(v))}
                            for k, v in spindle.results.items()},
                "go": go.results, "go_header": go.header}
        with open(args.json_out, "w") as f:
            json.dump(dump, f, indent=1)
    return 0


# ---------------------------------------------------------------------------
# tcp_echo: one load generator for both servers
# ---------------------------------------------------------------------------

def proc_times_s(pid):
    """(utime, stime) of a process (all its threads), in seconds, or None.
    stime is the kernel's work on the process's behalf: for an echo server,
    mostly the TCP stack under its reads and writes."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick
    except (OSError, ValueError, IndexError):
        return None


def proc_sleeps(pid):
    """Voluntary context switches of a process, summed over its threads
    (each is a sleep that something had to wake)."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
    except (OSError, ValueError):
        return None
    return total


def run_sampling_sleeps(cmd, timeout):
    """subprocess.run(cmd) with its output captured, plus the process's
    voluntary context switches over its whole life (connecting included), as
    last sampled before it exited: every 0.1 s, so at most that much of its
    run is missed."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = {}
    reader = threading.Thread(target=lambda: out.update(zip(("stdout", "stderr"), proc.communicate())),
                              daemon=True)
    reader.start()
    sleeps, deadline = None, time.time() + timeout
    while proc.poll() is None:
        if time.time() > deadline:
            proc.kill()
            reader.join()
            raise subprocess.TimeoutExpired(cmd, timeout)
        now = proc_sleeps(proc.pid)
        if now is not None:
            sleeps = now
        time.sleep(0.1)
    reader.join()
    return subprocess.CompletedProcess(cmd, proc.returncode, out.get("stdout", ""), out.get("stderr", "")), sleeps


def read_line(pipe, timeout):
    buf = b""
    deadline = time.time() + timeout
    fd = pipe.fileno()
    while not buf.endswith(b"\n"):
        left = deadline - time.time()
        if left <= 0:
            return None
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            return None
        ch = os.read(fd, 1)
        if not ch:
            return buf.decode(errors="replace") or None
        buf += ch
    return buf.decode(errors="replace")


def no_user_ceiling(figs):
    """Requests/s had the server spent no user time: the CPUs both processes
    kept busy, over the CPU per request left (the server's kernel time and
    the load generator's). Bounds what speeding up the server's own code
    can buy on a saturated machine. None when a figure is missing."""
    keys = ("server_cpu_per_wall", "client_cpu_per_wall", "server_sys_us_per_req", "client_cpu_us_per_req")
    if any(figs.get(k) is None for k in keys):
        return None
    per_req_s = (figs["server_sys_us_per_req"] + figs["client_cpu_us_per_req"]) * 1e-6
    return (figs["server_cpu_per_wall"] + figs["client_cpu_per_wall"]) / per_req_s if per_req_s > 0 else None


def tcp_once(name, server_cmd, loadgen, args):
    """Starts one server, drives it with the load generator, stops it.
    Returns a dict of figures, or None."""
    log(f"tcp_echo {name}:", " ".join(shlex.quote(c) for c in server_cmd))
    try:
        srv = subprocess.Popen(server_cmd, stdout=subprocess.PIPE, stderr=None, start_new_session=True)
    except OSError as e:
        log(f"tcp_echo {name}: cannot start the server: {e}")
        return None
    try:
        line = read_line(srv.stdout, 30)
        m = re.search(r"listening on\s+(\S+)", line or "")
        if not m:
            log(f"tcp_echo {name}: the server did not print 'listening on HOST:PORT' (got {line!r})")
            return None
        addr = m.group(1)
        host, _, port = addr.rpartition(":")
        if host in ("", "0.0.0.0", "[::]", "::", "*"):
            addr = f"127.0.0.1:{port}"
        # Drain the server's output so it never blocks on a full pipe.
        rest = []
        threading.Thread(target=lambda: rest.append(srv.stdout.read()), daemon=True).start()
        cmd = [loadgen, "-addr", addr, "-conns", str(args.tcp_conns), "-size", str(args.tcp_size),
               "-duration", args.tcp_duration, "-warmup", args.tcp_warmup, "-json"] + shlex.split(args.loadgen_args)
        log(f"tcp_echo {name}:", " ".join(shlex.quote(c) for c in cmd))
        times0, sleeps0 = proc_times_s(srv.pid), proc_sleeps(srv.pid)
        try:
            p, client_sleeps = run_sampling_sleeps(cmd, args.timeout)
        except subprocess.TimeoutExpired:
            log(f"tcp_echo {name}: the load generator timed out")
            return None
        times1, sleeps1 = proc_times_s(srv.pid), proc_sleeps(srv.pid)
        if p.returncode not in (0, 3):
            log(f"tcp_echo {name}: load generator exited {p.returncode}: {p.stderr.strip()[-500:]}")
            return None
        if p.returncode == 3:
            log(f"tcp_echo {name}: the load generator saw errors")
        try:
            rep = json.loads(p.stdout)
        except ValueError:
            log(f"tcp_echo {name}: bad load generator output {p.stdout[:200]!r}")
            return None
        figs = {"req_per_s": rep.get("rps"), "p50_us": rep.get("p50_us"), "p99_us": rep.get("p99_us"),
                "p999_us": rep.get("p999_us"), "max_us": rep.get("max_us"),
                "errors": float(rep.get("errors", 0) + rep.get("mismatches", 0)),
                "client_cpu_per_wall": rep["client_cpu_s"] / rep["elapsed_s"] if rep.get("elapsed_s") else None}
        cpu_s = sys_s = None
        if times0 is not None and times1 is not None:
            cpu_s, sys_s = sum(times1) - sum(times0), times1[1] - times0[1]
        if cpu_s is not None and rep.get("elapsed_s"):
            figs["server_cpu_per_wall"] = cpu_s / rep["elapsed_s"]
        requests = rep.get("requests") or 0
        if requests > 0:
            # Per request: on a saturated machine requests/s is the CPUs over
            # the sum of both processes' CPU time per request.
            if cpu_s is not None:
                figs["server_cpu_us_per_req"] = cpu_s * 1e6 / requests
                figs["server_sys_us_per_req"] = sys_s * 1e6 / requests
            if rep.get("client_cpu_s") is not None:
                figs["client_cpu_us_per_req"] = rep["client_cpu_s"] * 1e6 / requests
            figs["no_user_req_per_s"] = no_user_ceiling(figs)
            if sleeps0 is not None and sleeps1 is not None:
                figs["server_sleeps_per_req"] = (sleeps1 - sleeps0) / requests
            if client_sleeps is not None:
                figs["client_sleeps_per_req"] = client_sleeps / requests
        if rep.get("first_error"):
            log(f"tcp_echo {name}: first error: {rep['first_error']}")
        log(f"tcp_echo {name}: {num(figs['req_per_s'])} req/s, p50 {num(figs['p50_us'])} µs, p99 {num(figs['p99_us'])} µs")
        return figs
    finally:
        if srv.poll() is None:
            try:
                os.killpg(srv.pid, signal.SIGTERM)
            except OSError:
                srv.terminate()
            try:
                srv.wait(10)
            except subprocess.TimeoutExpired:
                log(f"tcp_echo {name}: the server ignored SIGTERM; killing it")
                try:
                    os.killpg(srv.pid, signal.SIGKILL)
                except OSError:
                    srv.kill()
                srv.wait()


TCP_ROWS = [("req_per_s", "requests per second", "1/s", True), ("p50_us", "latency p50", "µs", False),
            ("p99_us", "latency p99", "µs", False), ("p999_us", "latency p99.9", "µs", False),
            ("max_us", "latency max", "µs", False), ("server_cpu_per_wall", "server CPU / wall", "cores", False),
            ("client_cpu_per_wall", "load generator CPU / wall", "cores", False),
            ("server_cpu_us_per_req", "server CPU per request", "µs", False),
            ("server_sys_us_per_req", "server CPU per request in the kernel (stime)", "µs", False),
            ("client_cpu_us_per_req", "load generator CPU per request", "µs", False),
            ("no_user_req_per_s", "requests per second with no user time in the server (ceiling)", "1/s", True),
            ("server_sleeps_per_req", "server sleeps per request", "count", False),
            ("client_sleeps_per_req", "load generator sleeps per request", "count", False),
            ("errors", "errors", "count", False)]


def run_tcp(args, tmp):
    go = Go(args, tmp)
    go.fixed = None
    loadgen, go_server = go.exe("loadgen"), go.exe("echoserver")
    if not loadgen:
        log("tcp_echo: no load generator:", go.missing_reason or "build failed")
        return 1
    servers = []
    if os.path.isfile(args.echo_server) and os.access(args.echo_server, os.X_OK):
        servers.append(("spindle", [args.echo_server] + shlex.split(args.echo_server_args)))
    else:
        log(f"tcp_echo: spindle echo server {args.echo_server} not found")
        servers.append(("spindle", None))
    servers.append(("go", [go_server, "-addr", "127.0.0.1:0"] if go_server else None))
    results = {"spindle": [], "go": []}
    for r in range(args.tcp_reps):
        order = servers if r % 2 == 0 else servers[::-1]
        for name, cmd in order:
            if cmd:
                res = tcp_once(name, cmd, loadgen, args)
                if res:
                    results[name].append(res)
    out = ["# tcp_echo: spindle vs Go", "",
           f"- Go load generator, {args.tcp_conns} connections, {args.tcp_size}-byte payload, "
           f"{args.tcp_duration} measured (warm-up {args.tcp_warmup}), {args.tcp_reps} repetition(s) per server, alternating",
           f"- spindle: `{' '.join(servers[0][1]) if servers[0][1] else args.echo_server + ' (missing)'}`; "
           f"Go: `echoserver -addr 127.0.0.1:0` ({go.version or 'prebuilt'}); {os.cpu_count()} CPUs; "
           f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
           "", "| figure | spindle median | spindle min – max | Go median | Go min – max | spindle/Go |",
           "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for key, label, unit, higher in TCP_ROWS:
        s = summarize([x.get(key) for x in results["spindle"]])
        g = summarize([x.get(key) for x in results["go"]])
        r = s["median"] / g["median"] if s and g and g["median"] else None
        ratio = (f"{r:.2f}×" + (" (higher is better)" if higher else "")) if r is not None else ""
        out.append(f"| {label} | {fmt_val(s['median'], unit) if s else 'missing'} | {fmt_spread(s, unit) if s else ''} "
                   f"| {fmt_val(g['median'], unit) if g else 'missing'} | {fmt_spread(g, unit) if g else ''} | {ratio} |")
    ceiling = summarize([x.get("no_user_req_per_s") for x in results["spindle"]])
    go_rps = summarize([x.get("req_per_s") for x in results["go"]])
    if ceiling and go_rps and go_rps["median"]:
        out += ["", f"spindle's ceiling (its server spending no user time, at the CPUs its runs kept busy) is "
                    f"{ceiling['median'] / go_rps['median']:.2f}× Go's measured requests/s."]
    print("\n".join(out))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spindle-bench", default=os.path.join(REPO_ROOT, "build", "bench", "spindle_bench"),
                    help="spindle's Google Benchmark executable (default: build/bench/spindle_bench)")
    ap.add_argument("--anchors", default=os.path.join(os.path.dirname(REPO_ROOT), "shared", "anchors", "go"),
                    help="the Go anchors folder, copied to a temporary directory and built there "
                         "(default: ../shared/anchors/go)")
    ap.add_argument("--go-bin-dir", default="", help="use the anchors already built here (suite, echoserver, loadgen)")
    ap.add_argument("--filter", default=".", help="regex over workload names (default: everything)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions of every workload on both sides (default 5)")
    ap.add_argument("--no-interleave", action="store_true",
                    help="run all of spindle, then all of Go, instead of workload by workload")
    ap.add_argument("--fresh-processes", action="store_true",
                    help="run every repetition in a new process on both sides, alternating which goes "
                         "first each time (for parked_memory: no stack pool or heap warm from the "
                         "previous repetition, and neither side always runs after the other)")
    ap.add_argument("--prewarm-gib", type=float, default=0,
                    help="with --fresh-processes: touch and free this many GiB before every process, so "
                         "both sides fault in memory the host has backed (on a virtual machine a first "
                         "touch of memory the host has not backed costs several microseconds a page)")
    ap.add_argument("--all-reps", action="store_true",
                    help="ask spindle_bench for every repetition, not only aggregates, to get its min and max")
    ap.add_argument("--spindle-args", default="", help="extra arguments for spindle_bench")
    ap.add_argument("--go-args", default="", help="extra arguments for the Go suite, e.g. '-quiet-wait 60s -max-other 0.2'")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds allowed to one benchmark process")
    ap.add_argument("--json-out", default="", help="also write the collected figures to this file")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (built anchors, raw JSON)")
    ap.add_argument("--list", action="store_true", help="print the pairing of spindle and Go figures and exit")
    tcp = ap.add_argument_group("tcp_echo mode")
    tcp.add_argument("--tcp-echo", action="store_true", help="compare the echo servers instead of running the suite")
    tcp.add_argument("--echo-server", default=os.path.join(REPO_ROOT, "build", "samples", "echo_server"),
                     help="spindle's echo server; must print 'listening on HOST:PORT' first (default: build/samples/echo_server)")
    tcp.add_argument("--echo-server-args", default="", help="arguments for spindle's echo server")
    tcp.add_argument("--tcp-conns", type=int, default=100)
    tcp.add_argument("--tcp-size", type=int, default=64)
    tcp.add_argument("--tcp-duration", default="10s", help="Go duration, e.g. 10s")
    tcp.add_argument("--tcp-warmup", default="0s", help="Go duration, unrecorded")
    tcp.add_argument("--tcp-reps", type=int, default=5, help="runs of each server, alternating (default 5)")
    tcp.add_argument("--loadgen-args", default="", help="extra arguments for the load generator, e.g. '-procs 1'")
    # Testing aids: read results from files instead of running.
    ap.add_argument("--spindle-json", default="", help=argparse.SUPPRESS)
    ap.add_argument("--go-json", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.spindle_bench = os.path.abspath(args.spindle_bench)
    args.echo_server = os.path.abspath(args.echo_server)
    args.anchors = os.path.abspath(args.anchors)

    if args.list:
        print("| spindle benchmark | spindle figure | Go workload | Go figure | goal |")
        print("| --- | --- | --- | --- | --- |")
        for r in ROWS:
            _, goal, _ = ratio_and_verdict(r, None, None)
            print(f"| {r.sp} | {r.metric} | {r.go} | {r.go_fig} | {goal} |")
        return 0

    tmp = tempfile.mkdtemp(prefix="spindle-compare-")
    try:
        return run_tcp(args, tmp) if args.tcp_echo else run_suite(args, tmp)
    except KeyboardInterrupt:
        return 130
    finally:
        if args.keep_tmp:
            log("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
