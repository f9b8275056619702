# bench/decode_torch.py: the PyTorch side of bench_decode: a GPT-2 124M-shaped model (random
# weights, 12 layers, 12 heads, C 768, T 1024, V 50257) generating with a key/value cache after a
# 64-token prompt, batch 1 and 4, in tokens per second (median of 3 runs, min and max), in f32, in
# bf16 (the module cast) and in int8 (torch.ao dynamic quantisation of the Linear layers, lm head
# included, where the quantised engine runs here). PyTorch at its best on this machine:
#   LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 bench/decode_torch.py
# Options: --threads 1,2  --batch 1,4  --dtype f32,bf16,int8  --steps 24
# Timing never decides pass or fail.
import argparse, math, statistics, time
import torch, torch.nn as nn, torch.nn.functional as F

L, C, NH, T, V, PROMPT = 12, 768, 12, 1024, 50257, 64
HS = C // NH


class Block(nn.Module):
    def __init__(s):
        super().__init__()
        s.ln1, s.attn, s.proj = nn.LayerNorm(C), nn.Linear(C, 3 * C), nn.Linear(C, C)
        s.ln2, s.fc, s.fc2 = nn.LayerNorm(C), nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(s, x, kc, vc, p0):
        # x (B, n, C); kc, vc (B, NH, T, HS) caches, positions [0, p0) filled
        B, n, _ = x.shape
        q, k, v = s.attn(s.ln1(x)).split(C, dim=2)
        q, k, v = [t.view(B, n, NH, HS).transpose(1, 2) for t in (q, k, v)]
        kc[:, :, p0:p0 + n] = k
        vc[:, :, p0:p0 + n] = v
        K, Vv = kc[:, :, :p0 + n], vc[:, :, :p0 + n]
        att = (q @ K.transpose(-1, -2)) * (1.0 / math.sqrt(HS))
        if n > 1:
            mask = torch.ones(n, p0 + n, dtype=torch.bool).tril(p0)
            att = att.masked_fill(~mask, float("-inf"))
        y = torch.softmax(att, dim=-1) @ Vv
        x = x + s.proj(y.transpose(1, 2).reshape(B, n, C))
        return x + s.fc2(F.gelu(s.fc(s.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(s):
        super().__init__()
        s.wte, s.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        s.blocks, s.lnf = nn.ModuleList(Block() for _ in range(L)), nn.LayerNorm(C)
        s.head = nn.Linear(C, V, bias=False)
        s.head.weight = s.wte.weight   # tied, as in GPT-2

    def forward(s, ids, caches, p0):
        n = ids.shape[1]
        x = s.wte(ids) + s.wpe(torch.arange(p0, p0 + n))[None]
        for b, (kc, vc) in zip(s.blocks, caches):
            x = b(x, kc, vc, p0)
        return s.head(s.lnf(x[:, -1]))


def run(model, B, steps, dtype):
    caches = [(torch.zeros(B, NH, T, HS, dtype=dtype), torch.zeros(B, NH, T, HS, dtype=dtype)) for _ in range(L)]
    ids = torch.randint(0, V, (B, PROMPT))
    logits = model(ids, caches, 0)
    tok = logits.argmax(-1, keepdim=True)
    logits = model(tok, caches, PROMPT)   # warm-up step
    t0 = time.perf_counter()
    for s in range(steps):
        tok = logits.float().argmax(-1, keepdim=True)
        logits = model(tok, caches, PROMPT + 1 + s)
    return B * steps / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch", default="1,4")
    ap.add_argument("--dtype", default="f32,bf16,int8")
    ap.add_argument("--steps", type=int, default=24)
    a = ap.parse_args()
    torch.manual_seed(0)
    print(f"# decode_torch: torch {torch.__version__}, GPT-2 124M shape, random weights, {PROMPT}-token prompt, "
          f"{a.steps} steps, median of 3 (min-max); BLAS: {torch.__config__.show().count('BLAS')} mentions, "
          f"quantized engines {torch.backends.quantized.supported_engines}")
    print(f"{'dtype':14} {'threads':>7} {'batch':>5} {'tok/s':>8} {'(min-max)':>13}")
    for d in a.dtype.split(","):
        base = GPT().eval()
        dt = torch.float32
        if d == "bf16":
            model, dt = base.to(torch.bfloat16), torch.bfloat16
        elif d == "int8":
            engines = torch.backends.quantized.supported_engines
            for e in ("fbgemm", "onednn", "x86", "qnnpack"):
                if e in engines:
                    torch.backends.quantized.engine = e
                    break
            try:
                model = torch.ao.quantization.quantize_dynamic(base, {nn.Linear}, dtype=torch.qint8)
            except Exception as ex:   # an engine that does not run here
                print(f"int8   dynamic quantisation failed: {ex}")
                continue
            d = f"int8 ({torch.backends.quantized.engine})"
        else:
            model = base
        for th in a.threads.split(","):
            torch.set_num_threads(int(th))
            for B in a.batch.split(","):
                with torch.no_grad():
                    try:
                        r = sorted(run(model, int(B), a.steps, dt) for _ in range(3))
                    except Exception as ex:
                        print(f"{d:14} {th:>7} {B:>5} failed: {ex}")
                        continue
                print(f"{d:14} {th:>7} {B:>5} {statistics.median(r):8.1f} {r[0]:6.1f}-{r[-1]:<6.1f}", flush=True)


if __name__ == "__main__":
    main()
