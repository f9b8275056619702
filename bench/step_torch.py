"""bench/step_torch.py: PyTorch's time for the training steps bench_step measured, and the table.

    /usr/bin/python3 bench/step_torch.py --knob FILE [--threads N] [--min-time SECONDS]
    /usr/bin/python3 bench/step_torch.py --spec SPEC [--threads N] [--steps S] [--precision f32|bf16]

FILE holds bench_step's output ("model params graph_bytes loss0 steps median_ms best_ms" lines).
For each model there this builds the same network in PyTorch, the same math written out with
torch.nn.functional (F.linear with weights stored (out, in), F.layer_norm, F.gelu with the tanh
approximation, causal softmax attention, F.cross_entropy), with its own seeded random weights and
data, and times one step = zero grads (set to None, PyTorch 2's default) + forward + backward +
torch.optim.AdamW (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01 on matrices only, as
knob's AdamW decays), with the same thread count (torch.set_num_threads). Times are the median and
the fastest step over at least min_time seconds after a tenth of that spent warming up, as
bench_step measures them. This is plain PyTorch as a user gets it: in Debian's build linear layers
go to a generic BLAS, convolutions to oneDNN (MKL-DNN).

The table: ms per step for both, ratio = torch / knob of the medians (above 1 means knob is
faster), each side's first-step loss (about ln 10 = 2.30 for 10 classes, ln 256 = 5.55 for the
GPT: the weights differ, so the two agree only roughly), and knob's graph arena in bytes.
--spec (bench/suite.py's rows) times one of bench_step's specs for S steps after one. With
--precision bf16 (GPT specs, as bench_step --precision bf16) the forward and the loss run under
torch.autocast("cpu", dtype=torch.bfloat16), PyTorch's mixed precision: f32 master weights and
optimizer, F.linear and the attention products in bf16 (oneDNN's avx512_core_bf16 matmul on a CPU
with AVX512_BF16; ONEDNN_VERBOSE=1 shows it), backward outside the autocast region as PyTorch
recommends. Autocast also leaves layer_norm, gelu and the residual adds in bf16 when their input
is bf16 (knob keeps all but the products in f32); cross_entropy runs in f32 on both.

Timing never decides pass or fail. Without torch (Debian: apt-get install python3-torch) it prints
knob's figures alone.
"""
import argparse
import math
import os
import statistics
import sys
import time


def step_times(step, min_time):
    """(median, best) seconds per call of step, after a warm-up of min_time / 10."""
    start = time.perf_counter()
    step()
    while time.perf_counter() - start < min_time / 10:
        step()
    times = []
    start = time.perf_counter()
    while len(times) < 5 or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


# ------------------------------------------------------------------------------------------------
# The models, as bench/step.c builds them (parameters are plain tensors, used through F.*)

def make_mlp(torch, g):
    F = torch.nn.functional
    N, dims = 128, [784, 256, 128, 10]
    params = []
    for i in range(3):
        a = 1 / math.sqrt(dims[i])   # nn.Linear's default init
        params.append((torch.rand(dims[i + 1], dims[i], generator=g) * 2 - 1) * a)
        params.append((torch.rand(dims[i + 1], generator=g) * 2 - 1) * a)
    x = torch.rand(N, dims[0], generator=g)
    y = torch.randint(0, 10, (N,), generator=g)

    def loss(p):
        h = F.relu(F.linear(x, p[0], p[1]))
        h = F.relu(F.linear(h, p[2], p[3]))
        return F.cross_entropy(F.linear(h, p[4], p[5]), y)
    return params, loss


def make_cnn(torch, g):
    F = torch.nn.functional
    B, H = 64, 28
    shapes = [((16, 1, 3, 3), 9), ((32, 16, 3, 3), 144), ((10, 32 * 7 * 7), 32 * 7 * 7)]
    params = []
    for shape, fan_in in shapes:
        a = 1 / math.sqrt(fan_in)
        params.append((torch.rand(*shape, generator=g) * 2 - 1) * a)
        params.append((torch.rand(shape[0], generator=g) * 2 - 1) * a)
    x = torch.rand(B, 1, H, H, generator=g)
    y = torch.randint(0, 10, (B,), generator=g)

    def loss(p):
        h = F.max_pool2d(F.relu(F.conv2d(x, p[0], p[1], padding=1)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, p[2], p[3], padding=1)), 2)
        return F.cross_entropy(F.linear(h.reshape(B, -1), p[4], p[5]), y)
    return params, loss


def make_gpt(torch, g, V=256, C=128, T=64, B=8, NH=4, L=2):
    F = torch.nn.functional
    HS = C // NH
    normal = lambda std, *shape: torch.randn(*shape, generator=g) * std
    wte, wpe = normal(0.02, V, C), normal(0.01, T, C)
    params = [wte, wpe]
    for _ in range(L):
        params += [torch.ones(C), torch.zeros(C),                        # ln1
                   normal(0.02, 3 * C, C), torch.zeros(3 * C),           # attention qkv
                   normal(0.02, C, C), torch.zeros(C),                   # attention projection
                   torch.ones(C), torch.zeros(C),                        # ln2
                   normal(0.02, 4 * C, C), torch.zeros(4 * C),           # fc
                   normal(0.02, C, 4 * C), torch.zeros(C)]               # fc projection
    params += [torch.ones(C), torch.zeros(C)]                            # ln_f
    idx = torch.randint(0, V, (B, T), generator=g)
    tgt = torch.randint(0, V, (B, T), generator=g)
    pos = torch.arange(T)
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    sdpa = getattr(F, "scaled_dot_product_attention", None)   # torch >= 2.0

    def attention(qkv):   # (B, T, 3C) -> (B, T, C), causal, NH heads
        q, k, v = (t.view(B, T, NH, HS).transpose(1, 2) for t in qkv.split(C, dim=2))
        if sdpa is not None:
            y = sdpa(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(HS))
            att = F.softmax(att.masked_fill(~mask, float("-inf")), dim=-1)
            y = att @ v
        return y.transpose(1, 2).reshape(B, T, C)

    def loss(p):
        x = F.embedding(idx, p[0]) + F.embedding(pos, p[1])
        for l in range(L):
            (ln1w, ln1b, wqkv, bqkv, wproj, bproj,
             ln2w, ln2b, wfc, bfc, wfc2, bfc2) = p[2 + 12 * l: 14 + 12 * l]
            h = F.layer_norm(x, (C,), ln1w, ln1b, 1e-5)
            x = x + F.linear(attention(F.linear(h, wqkv, bqkv)), wproj, bproj)
            h = F.layer_norm(x, (C,), ln2w, ln2b, 1e-5)
            x = x + F.linear(F.gelu(F.linear(h, wfc, bfc), approximate="tanh"), wfc2, bfc2)
        x = F.layer_norm(x, (C,), p[-2], p[-1], 1e-5)
        return F.cross_entropy(F.linear(x, p[0]).view(B * T, V), tgt.view(B * T))   # tied to wte
    return params, loss


MODELS = {"mlp": make_mlp, "cnn": make_cnn, "gpt": make_gpt}


# ------------------------------------------------------------------------------------------------
# The workloads by spec, as bench/step.c reads them (mlp:D0-..-Dn:B, cnn5:C1,C2:B with
# unpadded 5x5 convs, gpt:V,L,NH,C,T,B); MLP and CNN train with SGD (lr 0.01), GPTs with AdamW.

def make_spec(torch, g, spec):
    F = torch.nn.functional
    kind, _, rest = spec.partition(":")
    if kind == "mlp":
        dims_s, _, b = rest.partition(":")
        dims, B = [int(d) for d in dims_s.split("-")], int(b)
        params = []
        for i in range(len(dims) - 1):
            a = 1 / math.sqrt(dims[i])
            params.append((torch.rand(dims[i + 1], dims[i], generator=g) * 2 - 1) * a)
            params.append((torch.rand(dims[i + 1], generator=g) * 2 - 1) * a)
        x = torch.rand(B, dims[0], generator=g)
        y = torch.randint(0, dims[-1], (B,), generator=g)

        def loss(p):
            h = x
            for i in range(len(dims) - 1):
                h = F.linear(h, p[2 * i], p[2 * i + 1])
                if i + 2 < len(dims):
                    h = F.relu(h)
            return F.cross_entropy(h, y)
        return params, loss
    if kind == "cnn5":
        ch, _, b = rest.partition(":")
        C1, C2 = (int(c) for c in ch.split(","))
        B = int(b)
        shapes = [((C1, 1, 5, 5), 25), ((C2, C1, 5, 5), 25 * C1), ((10, C2 * 16), C2 * 16)]
        params = []
        for shape, fan_in in shapes:
            a = 1 / math.sqrt(fan_in)
            params.append((torch.rand(*shape, generator=g) * 2 - 1) * a)
            params.append((torch.rand(shape[0], generator=g) * 2 - 1) * a)
        x = torch.rand(B, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (B,), generator=g)

        def loss(p):
            h = F.max_pool2d(F.relu(F.conv2d(x, p[0], p[1])), 2)
            h = F.max_pool2d(F.relu(F.conv2d(h, p[2], p[3])), 2)
            return F.cross_entropy(F.linear(h.reshape(B, -1), p[4], p[5]), y)
        return params, loss
    if kind == "gpt":
        V, L, NH, C, T, B = (int(v) for v in rest.split(","))
        return make_gpt(torch, g, V=V, C=C, T=T, B=B, NH=NH, L=L)
    raise SystemExit("step_torch.py: bad spec %r" % spec)


def spec_step(torch, spec, steps, precision="f32"):
    """(median ms, best ms, first loss, parameter count) over `steps` timed steps after one;
    precision bf16: forward and loss under CPU autocast to bf16 (GPT specs only)."""
    if precision == "bf16" and not spec.startswith("gpt:"):
        raise SystemExit("step_torch.py: --precision bf16 is for the GPT specs only, not %r" % spec)
    params, loss_fn = make_spec(torch, torch.Generator().manual_seed(0), spec)
    if precision == "bf16":
        f32_loss = loss_fn

        def loss_fn(p):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return f32_loss(p)
    for p in params:
        p.requires_grad_(True)
    if spec.startswith("gpt:"):
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.01},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    else:
        opt = torch.optim.SGD(params, lr=0.01)
    first = []

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(params)
        loss.backward()
        opt.step()
        if not first:
            first.append(loss.item())
    step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times), 1e3 * min(times), first[0], sum(p.numel() for p in params)


def torch_step(torch, name, min_time):
    """(median ms, best ms, first-step loss, parameter count) for one model."""
    params, loss_fn = MODELS[name](torch, torch.Generator().manual_seed(0))
    for p in params:
        p.requires_grad_(True)
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.01},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    first = []

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(params)
        loss.backward()
        opt.step()
        if not first:
            first.append(loss.item())
    median, best = step_times(step, min_time)
    return 1e3 * median, 1e3 * best, first[0], sum(p.numel() for p in params)


def read_knob(path):
    rows, notes = [], []
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                notes.append(line.rstrip())
                continue
            parts = line.split()
            if len(parts) == 7 and parts[0] in MODELS:
                rows.append((parts[0], int(parts[1]), int(parts[2]), float(parts[3]),
                             float(parts[5]), float(parts[6])))
    return rows, notes


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--knob", help="bench_step output")
    ap.add_argument("--spec", help="time one spec (bench/suite.py): prints 'spec params median best loss0'")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--precision", choices=("f32", "bf16"), default="f32",
                    help="--spec GPTs: bf16 = forward and loss under torch.autocast to bf16")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("KNOB_THREADS") or 2))
    ap.add_argument("--min-time", type=float, default=1.0)
    args = ap.parse_args()
    if args.spec:
        import torch
        torch.set_num_threads(args.threads)
        median, best, loss0, n = spec_step(torch, args.spec, args.steps, args.precision)
        print("%s %d %.4f %.4f %.4f" % (args.spec, n, median, best, loss0))
        return
    if not args.knob:
        ap.error("--knob FILE or --spec SPEC")
    rows, notes = read_knob(args.knob)
    try:
        import torch
    except ImportError:
        torch = None
        print("# torch not found in %s (Debian: apt-get install python3-torch)" % sys.executable)
    if torch is not None:
        torch.set_num_threads(args.threads)
        blas = "generic" if "BLAS_INFO=generic" in torch.__config__.show() else "see config"
        print("# torch %s, %d threads; F.linear -> BLAS (%s), conv2d -> oneDNN %s; "
              "zero_grad(set_to_none=True)"
              % (torch.__version__, torch.get_num_threads(), blas,
                 "on" if torch.backends.mkldnn.is_available() else "off"))
    for n in notes[:1]:
        print(n)
    head = "%-5s %8s %8s %8s %9s %8s %7s %11s %11s %11s" % (
        "model", "params", "knob ms", "(best)", "torch ms", "(best)", "ratio", "knob loss0",
        "torch loss0", "knob arena")
    print(head)
    print("-" * len(head))
    for name, n_params, arena, loss0, median, best in rows:
        t = None
        if torch is not None:
            t = torch_step(torch, name, args.min_time)
            if t[3] != n_params:
                print("# %s: torch has %d parameters, knob %d" % (name, t[3], n_params))
        na = lambda width: "%*s" % (width, "n/a")
        print("%-5s %8d %8.3f %8.3f %s %s %s %11.4f %s %11d" % (
            name, n_params, median, best,
            "%9.3f" % t[0] if t else na(9), "%8.3f" % t[1] if t else na(8),
            "%6.2fx" % (t[0] / median) if t else na(7), loss0,
            "%11.4f" % t[2] if t else na(11), arena))
        sys.stdout.flush()
    print("(ms per step: median and fastest; ratio = torch / knob medians, above 1 means knob is "
          "faster;\n loss0: the first step's loss, each side with its own random weights; knob arena: "
          "knob_graph_bytes.\n The MLP and the GPT are mostly linear layers, which this torch hands to "
          "its BLAS: see torch.matmul in the GEMM table.)")


if __name__ == "__main__":
    main()
