# bench/prefill_torch.py: the PyTorch side of bench_prefill: a GPT-2 124M-shaped forward over a 400-token
# prompt (random weights, all positions through the blocks, logits of the last), 2 threads. For
# PyTorch at its best run it with the OpenMP OpenBLAS (Debian libopenblas0-openmp):
#   LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp OMP_NUM_THREADS=2 /usr/bin/python3 bench/prefill_torch.py
# (Debian torch otherwise uses the generic reference BLAS: 10 tokens/s).
import time, torch, torch.nn as nn, torch.nn.functional as F
torch.set_num_threads(2)
L, C, NH, T, V, N = 12, 768, 12, 1024, 50257, 400
class Block(nn.Module):
    def __init__(s):
        super().__init__(); s.ln1 = nn.LayerNorm(C); s.attn = nn.Linear(C, 3 * C); s.proj = nn.Linear(C, C)
        s.ln2 = nn.LayerNorm(C); s.fc = nn.Linear(C, 4 * C); s.fc2 = nn.Linear(4 * C, C)
    def forward(s, x):
        q, k, v = s.attn(s.ln1(x)).split(C, dim=2)
        B, n, _ = x.shape
        q, k, v = [t.view(B, n, NH, C // NH).transpose(1, 2) for t in (q, k, v)]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True) if hasattr(F, "scaled_dot_product_attention") else \
            (torch.softmax((q @ k.transpose(-1, -2) / (C // NH) ** 0.5).masked_fill(torch.ones(n, n).triu(1).bool(), float("-inf")), -1) @ v)
        x = x + s.proj(y.transpose(1, 2).reshape(B, n, C))
        return x + s.fc2(F.gelu(s.fc(s.ln2(x)), approximate="tanh") if "approximate" in F.gelu.__doc__ else F.gelu(s.fc(s.ln2(x))))
wte, wpe = nn.Embedding(V, C), nn.Embedding(T, C)
blocks, lnf = nn.ModuleList(Block() for _ in range(L)), nn.LayerNorm(C)
ids = torch.randint(0, V, (1, N))
with torch.no_grad():
    for rep in range(3):
        t0 = time.perf_counter()
        x = wte(ids) + wpe(torch.arange(N))[None]
        for b in blocks: x = b(x)
        logits = lnf(x[:, -1]) @ wte.weight.T
        s = time.perf_counter() - t0
        print(f"torch {torch.__version__}: {N / s:.1f} tokens/s ({s:.2f} s)")
