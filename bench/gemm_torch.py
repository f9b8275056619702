"""bench/gemm_torch.py: PyTorch's matrix multiply on the shapes bench_gemm measured, and the table.

    /usr/bin/python3 bench/gemm_torch.py --knob FILE [--threads N] [--min-time SECONDS]

FILE holds bench_gemm's output ("M N K OP knob_gflops naive_gflops" lines). For each shape this
times, with the same thread count (torch.set_num_threads):
  torch   torch.matmul on operands stored the same way (transposes as views), which is what a
          PyTorch user gets; Debian's build hands it to the system BLAS.
  onednn  torch's oneDNN (MKL-DNN) inner-product primitive, operands converted to its layout
          before timing: the fastest float32 matmul this PyTorch has on the CPU.
and prints knob's GFLOP/s next to both, with knob / torch ratios. GFLOP/s = 2 M N K / seconds of
the fastest call after a warm-up, measured the same way as bench_gemm. Timing never decides
pass or fail.
Without torch (Debian: apt-get install python3-torch) it prints knob's figures alone.
"""
import argparse
import os
import sys
import time


def best_seconds(f, min_time):
    start = time.perf_counter()
    f()  # warm-up, for a tenth of min_time as bench_gemm does
    while time.perf_counter() - start < min_time / 10:
        f()
    times = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < min_time and len(times) < 1000):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def torch_gflops(torch, M, N, K, op, min_time):
    """(matmul GFLOP/s, oneDNN GFLOP/s or None) for op(A) (M, K) @ op(B) (K, N)."""
    g = torch.Generator().manual_seed(0)
    A = torch.rand(K, M, generator=g).t() if op[0] == "t" else torch.rand(M, K, generator=g)
    B = torch.rand(N, K, generator=g).t() if op[1] == "t" else torch.rand(K, N, generator=g)
    C = torch.empty(M, N)
    flops = 2.0 * M * N * K
    matmul = flops / best_seconds(lambda: torch.matmul(A, B, out=C), min_time) / 1e9
    onednn = None
    if torch.backends.mkldnn.is_available():
        a = A.contiguous().to_mkldnn()          # (M, K)
        w = B.t().contiguous().to_mkldnn()      # (N, K): linear computes a @ w^T
        linear = torch._C._nn.mkldnn_linear
        onednn = flops / best_seconds(lambda: linear(a, w, None), min_time) / 1e9
    return matmul, onednn


def read_knob(path):
    rows, notes = [], []
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                notes.append(line.rstrip())
                continue
            parts = line.split()
            if len(parts) >= 6:     # bench_gemm adds %peak after these
                M, N, K = (int(x) for x in parts[:3])
                rows.append((M, N, K, parts[3], float(parts[4]), parts[5]))
    return rows, notes


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--knob", required=True, help="bench_gemm output")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("KNOB_THREADS") or 2))
    ap.add_argument("--min-time", type=float, default=0.5)
    args = ap.parse_args()
    rows, notes = read_knob(args.knob)
    try:
        import torch
    except ImportError:
        torch = None
        print("# torch not found in %s (Debian: apt-get install python3-torch)" % sys.executable)
    if torch is not None:
        torch.set_num_threads(args.threads)
        print("# torch %s, %d threads; torch = torch.matmul (BLAS: %s), onednn = mkldnn_linear"
              % (torch.__version__, torch.get_num_threads(),
                 "generic" if "BLAS_INFO=generic" in torch.__config__.show() else "see config"))
    for n in notes[:1]:
        print(n)
    head = "%5s %5s %5s %3s %9s %7s %9s %7s %9s %7s" % (
        "M", "N", "K", "op", "knob", "naive", "torch", "ratio", "onednn", "ratio")
    print(head)
    print("-" * len(head))
    for M, N, K, op, knob, naive in rows:
        t = o = None
        if torch is not None:
            t, o = torch_gflops(torch, M, N, K, op, args.min_time)
        fmt = lambda x: "%9.1f" % x if x is not None else "%9s" % "n/a"
        ratio = lambda x: "%6.2fx" % (knob / x) if x else "%7s" % "n/a"
        print("%5d %5d %5d %3s %9.1f %7s %s %s %s %s" % (
            M, N, K, op, knob, naive, fmt(t), ratio(t), fmt(o), ratio(o)))
        sys.stdout.flush()
    print("(GFLOP/s; ratio = knob / torch, above 1 means knob is faster)")


if __name__ == "__main__":
    main()
