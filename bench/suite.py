"""bench/suite.py: knob against PyTorch at its best on the workloads of issue 9's table, interleaved.

    /usr/bin/python3 bench/suite.py BUILD [--threads N] [--reps R] [--quick] [--only ROWS]

Run by `make bench` (bench/run.sh); BENCH_QUICK=1 there passes --quick: one repetition, smaller
step counts, the big GPTs left out (a smoke run of about a minute). --only ROWS runs a subset,
ROWS a comma-separated list of the keys in ROW_KEYS below (default: every row).

PyTorch at its best: the PyTorch process only gets LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/
openblas-openmp (Debian's OpenMP OpenBLAS instead of the reference BLAS), OPENBLAS_CORETYPE set to
the best OpenBLAS kernel this CPU runs (SkylakeX where AVX-512 F/BW/VL exist, else Haswell for
AVX2 + FMA, else Prescott) and ATEN_CPU_CAPABILITY likewise (avx512, avx2, default), and
OMP_NUM_THREADS = the thread count. Both sides train the same model (the parameter counts are
printed side by side); the models are bench/step.c's specs and bench/step_torch.py builds them.

Every row runs knob and PyTorch alternately, R times each (each run a fresh process: one warm-up
step, then S timed steps, the run's figure the median step); the table gives the median of the R
runs with the min and max, the ratio of the medians, and the peak memory of each process (maxrss
from wait4). The GEMM rows give GFLOP/s and the fraction of the f32 FMA peak, measured by
bench_peak (bench/peak.c: independent FMA chains per thread, all threads at once, ymm and, where
the CPU has AVX-512 F, zmm; the peak is the better of the two: a stated clock can be far from the
real one under a hypervisor, and the width says nothing of the units: a zmm FMA gives no more than
a ymm one on Zen 4 and twice as much on a Xeon with two 512-bit units). Where the CPU has
AVX512_BF16 the machine line also gives bench_peak's vdpbf16ps peak (bf16 dot products, the
ceiling of knob_gemm_bf16). The "GPT char train, bf16" row trains the GPT char row's model in
mixed precision on both sides (bench_step --precision bf16: knob_matmul_prec with KNOB_PREC_BF16,
as train-gpt --precision bf16; step_torch.py --precision bf16: torch.autocast to bf16), with each
side's first-step loss; it runs where PyTorch 1.13 sends bf16 matmuls to oneDNN (AVX-512 BW, VL
and DQ), elsewhere it would time a generic bf16 loop and says "not run". The generation rows (GPT-2 124M shape,
random weights, batch 1, after a 64-token prompt: bench_decode and bench/decode_torch.py) give
tokens/s and the fraction of the streaming bandwidth bench_decode measures (weights read per token
x tokens/s). The memory bandwidth line is a measured copy (numpy, one thread).
The last rows repeat the GPT character row with one competing busy process (`while :; do :; done`)
for both sides, then time knob alone on one thread with nothing else running: the busy row's
ratio to that one is the issue's bar (at least 1). Timing never decides pass or fail; `uptime`'s
load is printed before and after.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

PY = "/usr/bin/python3"


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            txt = f.read()
    except OSError:
        return set(), 0.0, "unknown"
    flags = set(re.search(r"^flags\s*:(.*)$", txt, re.M).group(1).split()) if "flags" in txt else set()
    mhz = re.search(r"^cpu MHz\s*:\s*([\d.]+)", txt, re.M)
    name = re.search(r"^model name\s*:\s*(.*)$", txt, re.M)
    return flags, float(mhz.group(1)) if mhz else 0.0, name.group(1).strip() if name else "unknown"


def torch_env(threads, flags):
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = "/usr/lib/x86_64-linux-gnu/openblas-openmp"
    if {"avx512f", "avx512bw", "avx512vl"} <= flags:
        core, aten = "SkylakeX", "avx512"
    elif {"avx2", "fma"} <= flags:
        core, aten = "Haswell", "avx2"
    else:
        core, aten = "Prescott", "default"
    env["OPENBLAS_CORETYPE"], env["ATEN_CPU_CAPABILITY"] = core, aten
    env["OMP_NUM_THREADS"] = str(threads)
    return env, core, aten


def run_rss(cmd, env=None):
    """(stdout, peak RSS MiB) of one process. Through /usr/bin/time where it exists: a child's
    maxrss also counts the pages of the process that forked it (kept across exec), and time is
    small; else wait4 on our own child (then this script's ~30 MiB is a floor)."""
    timer = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
    rss_file = None
    if timer:
        fd, rss_file = tempfile.mkstemp(prefix="knob-bench-")
        os.close(fd)
        cmd = [timer, "-o", rss_file, "-f", "%M"] + cmd
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    out, err = p.communicate()
    rss = 0.0
    if rss_file:
        with open(rss_file) as f:
            words = f.read().split()
        os.unlink(rss_file)
        rss = float(words[-1]) / 1024.0 if words else 0.0
    if p.returncode:
        raise SystemExit("suite: %s failed: %s" % (" ".join(cmd), err.strip()[-300:]))
    return out, rss


def knob_step(build, spec, threads, steps, precision="f32"):
    """(median ms, parameter count, peak RSS MiB, first-step loss) of one bench_step process."""
    out, rss = run_rss([os.path.join(build, "bench_step"), "--threads", str(threads), "--steps", str(steps),
                        "--precision", precision, spec])
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == spec and len(parts) == 7:
            return float(parts[5]), int(parts[1]), rss, float(parts[3])
    raise SystemExit("suite: no result from bench_step for %s" % spec)


def torch_step(spec, threads, steps, env, precision="f32"):
    out, rss = run_rss([PY, "bench/step_torch.py", "--spec", spec, "--threads", str(threads), "--steps", str(steps),
                        "--precision", precision], env)
    parts = out.split()
    return float(parts[2]), int(parts[1]), rss, float(parts[4])


def knob_gemm(build, n, threads):
    out, rss = run_rss([os.path.join(build, "bench_gemm"), "--threads", str(threads), "--min-time", "1",
                        str(n), str(n), str(n), "nn"])
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0] == str(n):
            return float(parts[4]), rss
    raise SystemExit("suite: no result from bench_gemm")


TORCH_GEMM = """
import sys, time, torch
torch.set_num_threads(int(sys.argv[2])); n = int(sys.argv[1])
a, b = torch.rand(n, n), torch.rand(n, n); c = a @ b
best = 1e9; t_end = time.perf_counter() + 1.0
while time.perf_counter() < t_end or best == 1e9:
    t0 = time.perf_counter(); torch.mm(a, b, out=c); best = min(best, time.perf_counter() - t0)
print(2.0 * n ** 3 / best / 1e9)
"""


def measured_peak(build, threads):
    """(f32 GFLOP/s, how it was found, bf16 GFLOP/s or 0) from bench_peak's "peak THREADS GFLOPS
    ISA" lines: the f32 peak is the best of its f32 probes (avx2+fma, avx512f), the bf16 one its
    avx512bf16 line; 0 when it could not run."""
    try:
        out, _ = run_rss([os.path.join(build, "bench_peak"), "--threads", str(threads), "--seconds", "1"])
        probes = [(p[3], float(p[2])) for p in (line.split() for line in out.splitlines())
                  if len(p) >= 4 and p[0] == "peak"]
    except (SystemExit, ValueError):
        return 0.0, "not measured", 0.0
    f32 = [(g, isa) for isa, g in probes if isa != "avx512bf16" and g > 0]
    bf16 = max([g for isa, g in probes if isa == "avx512bf16"] or [0.0])
    if not f32:
        return 0.0, "not measured", bf16
    how = "measured, %d threads at once, best of %s" % (threads, ", ".join("%s %.0f" % (i, g) for g, i in f32))
    return max(f32)[0], how, bf16


def knob_decode(build, dtype, threads, steps):
    """(tokens/s, fraction of the streaming bandwidth, peak RSS) of one bench_decode process."""
    out, rss = run_rss([os.path.join(build, "bench_decode"), "--threads", str(threads), "--batch", "1",
                        "--dtype", dtype, "--reps", "1", "--steps", str(steps)])
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 10 and parts[0] == dtype and parts[-1].endswith("%"):
            return float(parts[-5]), float(parts[-1].rstrip("%")) / 100.0, rss
    raise SystemExit("suite: no result from bench_decode for %s" % dtype)


def torch_decode(dtype, threads, steps, env):
    out, rss = run_rss([PY, "bench/decode_torch.py", "--threads", str(threads), "--batch", "1",
                        "--dtype", dtype, "--steps", str(steps)], env)
    for line in out.splitlines():   # "f32  2  1  18.2 ...", "int8 (onednn)  2  1  21.6 ..."
        m = re.match(r"(\S+)(?: \(\S+\))?\s+(\d+)\s+(\d+)\s+([\d.]+)\s", line)
        if m and m.group(1) == dtype and m.group(2) == str(threads) and m.group(3) == "1":
            return float(m.group(4)), rss
    return None, rss   # e.g. no quantised engine for int8 on this PyTorch


def torch_gemm(n, threads, env):
    out, rss = run_rss([PY, "-c", TORCH_GEMM, str(n), str(threads)], env)
    return float(out.split()[-1]), rss


BANDWIDTH = """
import time, numpy as np
a = np.ones(64 << 20, dtype=np.float32); b = np.empty_like(a); best = 1e9
for _ in range(5):
    t0 = time.perf_counter(); np.copyto(b, a); best = min(best, time.perf_counter() - t0)
print(2 * a.nbytes / best / 1e9)
"""


def bandwidth():   # in a process of its own, so that its 512 MiB do not count in later children
    try:
        return float(subprocess.run([PY, "-c", BANDWIDTH], capture_output=True, text=True, check=True).stdout)
    except (subprocess.CalledProcessError, ValueError, OSError):
        return None


def summary(xs):
    return statistics.median(xs), min(xs), max(xs)


def fmt(m):
    return "%.4g [%.4g-%.4g]" % m


def busy_on():
    return subprocess.Popen(["sh", "-c", "while :; do :; done"])


# --only's keys, in the table's order: the GEMM rows, the training rows (GPT char f32 and bf16, MLP,
# CNN, GPT V50257, GPT-2 124M), the busy GPT char row, the generation rows
ROW_KEYS = ("gemm", "gpt", "gpt-bf16", "mlp", "cnn", "gpt50k", "gpt2", "busy", "gen")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("KNOB_THREADS") or 2))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", metavar="ROWS", help="comma-separated row keys: " + ", ".join(ROW_KEYS))
    a = ap.parse_args()
    only = set(ROW_KEYS) if not a.only else set(k.strip() for k in a.only.split(",") if k.strip())
    if only - set(ROW_KEYS):
        ap.error("--only: unknown row %s; the rows are %s" % (", ".join(sorted(only - set(ROW_KEYS))), ", ".join(ROW_KEYS)))
    reps = 1 if a.quick else a.reps
    flags, mhz, cpu = cpu_flags()
    env, core, aten = torch_env(a.threads, flags)
    peak, how, peak_bf16 = measured_peak(a.build, a.threads)
    load = lambda: open("/proc/loadavg").read().split()[0]
    print("# machine: %s, %d threads; FMA peak %.0f GFLOP/s (%s; stated clock %.0f MHz)%s"
          % (cpu, a.threads, peak, how, mhz,
             "; bf16 peak %.0f GFLOP/s (vdpbf16ps)" % peak_bf16 if peak_bf16 else ""))
    print("# PyTorch process: LD_LIBRARY_PATH=%s OPENBLAS_CORETYPE=%s ATEN_CPU_CAPABILITY=%s OMP_NUM_THREADS=%d"
          % (env["LD_LIBRARY_PATH"], core, aten, a.threads))
    print("# load average before: %s; runs interleaved knob, torch; %d each; median [min-max]" % (load(), reps))
    bw = bandwidth()
    if bw:
        print("# memory bandwidth (numpy copy, 1 thread, read + write): %.1f GB/s" % bw)
    sys.stdout.flush()

    print("%-34s %-24s %-24s %7s %9s %9s %s" % ("workload", "knob", "torch", "ratio", "knob MiB", "torch MiB", "params"))
    for n in ([] if "gemm" not in only else [1024] if a.quick else [1024, 2048]):
        k, t, kr, tr = [], [], 0.0, 0.0
        for _ in range(reps):
            g, kr = knob_gemm(a.build, n, a.threads)
            k.append(g)
            g, tr = torch_gemm(n, a.threads, env)
            t.append(g)
        km, tm = summary(k), summary(t)
        print("%-34s %-24s %-24s %6.2fx %9.0f %9.0f %s" % (
            "GEMM %d^3 GFLOP/s (%%peak)" % n, fmt(km) + " %.0f%%" % (100 * km[0] / peak if peak else 0),
            fmt(tm) + " %.0f%%" % (100 * tm[0] / peak if peak else 0), km[0] / tm[0], kr, tr, "-"))
        sys.stdout.flush()

    # (key, label, spec, tokens or images per step, unit, steps per run, precision)
    char = "gpt:113,4,4,128,128,32"
    rows = [
        ("gpt", "GPT V113 L4 H4 C128 T128 B32", char, 4096, "tok/s", 2 if a.quick else 5, "f32"),
        ("gpt-bf16", "GPT char train, bf16", char, 4096, "tok/s", 2 if a.quick else 5, "bf16"),
        ("mlp", "MLP 784-128-10 b64 SGD", "mlp:784-128-10:64", 64, "s/epoch", 20 if a.quick else 2000, "f32"),
        ("cnn", "CNN 5x5 (8,16)+fc b64 SGD", "cnn5:8,16:64", 64, "s/epoch", 2 if a.quick else 200, "f32"),
    ]
    if not a.quick:
        rows += [
            ("gpt50k", "GPT V50257 L6 H6 C384 T256 B8", "gpt:50257,6,6,384,256,8", 2048, "tok/s", 3, "f32"),
            ("gpt2", "GPT-2 124M B4 T64 (wpe T)", "gpt:50257,12,12,768,64,4", 256, "ms/step", 3, "f32"),
        ]
    busy_rows = [("busy", "GPT char row, 1 busy process", char, 4096, "tok/s", 1 if a.quick else 5, "f32")]
    torch_bf16 = {"avx512bw", "avx512vl", "avx512dq"} <= flags   # PyTorch 1.13's oneDNN bf16 matmul
    for busy, table in ((0, rows), (1, busy_rows)):
        for key, label, spec, per_step, unit, steps, prec in table:
            if key not in only:
                continue
            if prec == "bf16" and not torch_bf16:
                print("%-34s (not run: PyTorch 1.13 has bf16 matmuls in oneDNN on AVX-512 BW/VL/DQ CPUs only)"
                      % ("%s, %s" % (label, unit)))
                continue
            k, t, kr, tr, kp, tp, kl, tl = [], [], 0.0, 0.0, 0, 0, 0.0, 0.0
            for _ in range(reps):
                b = busy_on() if busy else None
                try:
                    ms, kp, kr, kl = knob_step(a.build, spec, a.threads, steps, prec)
                    k.append(ms)
                    ms, tp, tr, tl = torch_step(spec, a.threads, steps, env, prec)
                    t.append(ms)
                finally:
                    if b:
                        b.kill()
                        b.wait()
            conv = {"tok/s": lambda ms: per_step / (ms / 1e3),
                    "s/epoch": lambda ms: 60000.0 / per_step * ms / 1e3,
                    "ms/step": lambda ms: ms}[unit]
            km, tm = summary([conv(x) for x in k]), summary([conv(x) for x in t])
            faster = km[0] / tm[0] if unit == "tok/s" else tm[0] / km[0]
            print("%-34s %-24s %-24s %6.2fx %9.0f %9.0f %d/%d%s" % (
                "%s, %s" % (label, unit), fmt(km), fmt(tm), faster, kr, tr, kp, tp,
                " loss0 %.4f/%.4f" % (kl, tl) if spec == char and not busy else ""))
            sys.stdout.flush()
            if busy:   # the bar for the busy row: knob's own speed on one thread, quiet
                q = summary([conv(knob_step(a.build, spec, 1, steps, prec)[0]) for _ in range(reps)])
                print("%-34s %-24s %-24s %6.2fx   (knob busy on %d threads / knob quiet on 1)" % (
                    "%s, %s" % ("GPT char row, knob 1 thread quiet", unit), fmt(q), "-", km[0] / q[0],
                    a.threads))
                sys.stdout.flush()
    # generation: GPT-2 124M shape, batch 1; knob's dtypes against PyTorch's own f32, bf16, int8
    for dtype in ([] if "gen" not in only else ["f32"] if a.quick else ["f32", "bf16", "int8"]):
        k, t, bwf, kr, tr = [], [], [], 0.0, 0.0
        for _ in range(reps):
            tok, frac, kr = knob_decode(a.build, dtype, a.threads, 16 if a.quick else 32)
            k.append(tok)
            bwf.append(frac)
            tok, tr = torch_decode(dtype, a.threads, 8 if a.quick else 16, env)
            if tok is not None:
                t.append(tok)
        km = summary(k)
        tm = summary(t) if t else None
        print("%-34s %-24s %-24s %7s %9.0f %9.0f %s" % (
            "GPT-2 124M generate %s, tok/s" % dtype, fmt(km) + " %.0f%%bw" % (100 * statistics.median(bwf)),
            fmt(tm) if tm else "(not run)", "%6.2fx" % (km[0] / tm[0]) if tm else "-", kr, tr, "batch 1"))
        sys.stdout.flush()
    print("# ratio: how many times faster knob is (above 1: knob faster); s/epoch = 60000 / batch x the "
          "median step (no data loading); params: knob/torch; loss0: each side's first-step loss "
          "(knob/torch, own random weights); %bw: of bench_decode's measured streaming read")
    print("# load average after: %s" % load())


if __name__ == "__main__":
    main()
