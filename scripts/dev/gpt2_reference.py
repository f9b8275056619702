#!/usr/bin/env python3
"""gpt2_reference.py: writes tests/data/gpt_tiny/, a tiny GPT-2 with random weights in Hugging Face
layout, and the logits an independent forward pass gives for a fixed token sequence.

Dev script (numpy only); the test suite never runs it, it reads the files it wrote:
  model.safetensors   names with the "transformer." prefix, Conv1D weights stored (in, out), the
                      attn.bias / attn.masked_bias buffers HF keeps; most tensors F32, wpe F16 and
                      ln_f.weight BF16 so the loader's conversions are on the path too
  config.json         HF GPT2Config fields
  expected_logits.txt "tokens t0 t1 ...", then one line per position: its V logits

The forward pass follows GPT-2's definition directly (float64, from the stored float32 values):
  x = wte[tok] + wpe[pos]
  per layer: x += c_proj(attn(ln_1(x))); x += mlp_c_proj(gelu_tanh(c_fc(ln_2(x))))
  logits = ln_f(x) @ wte^T      (Conv1D: y = x @ W + b with W (in, out))
It shares no code with knob; when torch is installed the same forward is also computed with torch's
layer_norm, gelu(approximate="tanh") and softmax as a second opinion (they must agree to 1e-9).
Usage: python3 scripts/dev/gpt2_reference.py [OUT_DIR]
"""
import json
import math
import os
import struct
import sys

import numpy as np

N_LAYER, N_HEAD, N_EMBD, N_POS, VOCAB = 2, 2, 16, 16, 50
SEED = 1234
TOKENS = [3, 17, 42, 0, 49, 8, 8, 25, 11, 30, 5, 44, 19, 2, 37, 21]   # 16 = n_positions: every position


def bf16_round(a):
    """float32 -> nearest bfloat16 (ties to even), returned as float32 values and raw uint16."""
    u = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return (r.astype(np.uint32) << 16).view(np.float32), r


def make_params(rng):
    C = N_EMBD
    p = {}
    def normal(shape, std):
        return (rng.standard_normal(shape) * std).astype(np.float32)
    p["wte.weight"] = normal((VOCAB, C), 0.5)
    p["wpe.weight"] = normal((N_POS, C), 0.3).astype(np.float16).astype(np.float32)   # stored F16
    for l in range(N_LAYER):
        h = "h.%d." % l
        p[h + "ln_1.weight"] = 1 + normal((C,), 0.2)
        p[h + "ln_1.bias"] = normal((C,), 0.1)
        p[h + "attn.c_attn.weight"] = normal((C, 3 * C), 0.4)     # Conv1D (in, out)
        p[h + "attn.c_attn.bias"] = normal((3 * C,), 0.1)
        p[h + "attn.c_proj.weight"] = normal((C, C), 0.3)
        p[h + "attn.c_proj.bias"] = normal((C,), 0.1)
        p[h + "ln_2.weight"] = 1 + normal((C,), 0.2)
        p[h + "ln_2.bias"] = normal((C,), 0.1)
        p[h + "mlp.c_fc.weight"] = normal((C, 4 * C), 0.3)
        p[h + "mlp.c_fc.bias"] = normal((4 * C,), 0.1)
        p[h + "mlp.c_proj.weight"] = normal((4 * C, C), 0.2)
        p[h + "mlp.c_proj.bias"] = normal((C,), 0.1)
    p["ln_f.weight"] = bf16_round(1 + normal((C,), 0.2))[0]      # stored BF16
    p["ln_f.bias"] = normal((C,), 0.1)
    return p


def layernorm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def forward(p, tokens):
    P = {k: v.astype(np.float64) for k, v in p.items()}
    T, C, NH = len(tokens), N_EMBD, N_HEAD
    HS = C // NH
    x = P["wte.weight"][tokens] + P["wpe.weight"][:T]
    mask = np.tril(np.ones((T, T), dtype=bool))
    for l in range(N_LAYER):
        h = "h.%d." % l
        a = layernorm(x, P[h + "ln_1.weight"], P[h + "ln_1.bias"])
        qkv = a @ P[h + "attn.c_attn.weight"] + P[h + "attn.c_attn.bias"]
        q, k, v = qkv[:, :C], qkv[:, C:2 * C], qkv[:, 2 * C:]
        y = np.zeros((T, C))
        for hd in range(NH):
            s = slice(hd * HS, (hd + 1) * HS)
            att = q[:, s] @ k[:, s].T / math.sqrt(HS)
            att = np.where(mask, att, -np.inf)
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            y[:, s] = att @ v[:, s]
        x = x + y @ P[h + "attn.c_proj.weight"] + P[h + "attn.c_proj.bias"]
        m = layernorm(x, P[h + "ln_2.weight"], P[h + "ln_2.bias"])
        m = gelu_tanh(m @ P[h + "mlp.c_fc.weight"] + P[h + "mlp.c_fc.bias"])
        x = x + m @ P[h + "mlp.c_proj.weight"] + P[h + "mlp.c_proj.bias"]
    x = layernorm(x, P["ln_f.weight"], P["ln_f.bias"])
    return x @ P["wte.weight"].T


def forward_torch(p, tokens):
    """The same model with torch's own layer_norm, GELU (tanh) and softmax: a second opinion."""
    import torch
    import torch.nn.functional as F
    P = {k: torch.tensor(v, dtype=torch.float64) for k, v in p.items()}
    T, C, NH = len(tokens), N_EMBD, N_HEAD
    x = P["wte.weight"][tokens] + P["wpe.weight"][:T]
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    for l in range(N_LAYER):
        h = "h.%d." % l
        a = F.layer_norm(x, (C,), P[h + "ln_1.weight"], P[h + "ln_1.bias"], 1e-5)
        q, k, v = torch.addmm(P[h + "attn.c_attn.bias"], a, P[h + "attn.c_attn.weight"]).split(C, dim=1)
        q, k, v = (t.view(T, NH, C // NH).transpose(0, 1) for t in (q, k, v))
        att = (q @ k.transpose(1, 2) / math.sqrt(C // NH)).masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(0, 1).reshape(T, C)
        x = x + torch.addmm(P[h + "attn.c_proj.bias"], y, P[h + "attn.c_proj.weight"])
        m = F.layer_norm(x, (C,), P[h + "ln_2.weight"], P[h + "ln_2.bias"], 1e-5)
        m = F.gelu(torch.addmm(P[h + "mlp.c_fc.bias"], m, P[h + "mlp.c_fc.weight"]), approximate="tanh")
        x = x + torch.addmm(P[h + "mlp.c_proj.bias"], m, P[h + "mlp.c_proj.weight"])
    x = F.layer_norm(x, (C,), P["ln_f.weight"], P["ln_f.bias"], 1e-5)
    return (x @ P["wte.weight"].T).numpy()


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype, shape, raw bytes); header padded with spaces to 8 bytes."""
    header, at = {"__metadata__": {"format": "pt"}}, 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [at, at + len(raw)]}
        at += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-(8 + len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, _, raw in tensors:
            f.write(raw)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..",
                                                             "tests", "data", "gpt_tiny")
    os.makedirs(out, exist_ok=True)
    p = make_params(np.random.default_rng(SEED))

    tensors = []
    for name, v in p.items():
        full = "transformer." + name
        if name == "wpe.weight":
            tensors.append((full, "F16", v.shape, v.astype("<f2").tobytes()))
        elif name == "ln_f.weight":
            tensors.append((full, "BF16", v.shape, bf16_round(v)[1].astype("<u2").tobytes()))
        else:
            tensors.append((full, "F32", v.shape, v.astype("<f4").tobytes()))
        if name.endswith("ln_1.weight"):   # the causal-mask buffers HF stores per layer
            l = name.split(".")[1]
            m = np.tril(np.ones((1, 1, N_POS, N_POS), dtype=np.float32))
            tensors.append(("transformer.h.%s.attn.bias" % l, "F32", m.shape, m.astype("<f4").tobytes()))
            tensors.append(("transformer.h.%s.attn.masked_bias" % l, "F32", (), np.float32(-1e4).tobytes()))
    write_safetensors(os.path.join(out, "model.safetensors"), tensors)

    config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "activation_function": "gelu_new",
              "layer_norm_epsilon": 1e-05, "n_layer": N_LAYER, "n_head": N_HEAD, "n_embd": N_EMBD,
              "n_positions": N_POS, "n_ctx": N_POS, "vocab_size": VOCAB}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")

    logits = forward(p, TOKENS)
    try:
        diff = np.abs(forward_torch(p, TOKENS) - logits).max()
        print("numpy and torch forwards agree to %.3g" % diff)
        assert diff < 1e-9
    except ImportError:
        print("torch not found: numpy forward only")
    with open(os.path.join(out, "expected_logits.txt"), "w") as f:
        f.write("# gpt2_reference.py: float64 GPT-2 forward; one line per position, %d logits\n" % VOCAB)
        f.write("tokens " + " ".join(str(t) for t in TOKENS) + "\n")
        for row in logits:
            f.write(" ".join("%.9g" % v for v in row) + "\n")
    print("wrote %s: logits range [%.3f, %.3f]" % (out, logits.min(), logits.max()))


if __name__ == "__main__":
    main()
