"""GPU benchmark at real shapes: calibrate+slice, eval and generation throughput, peak memory, and the bound
the GPU's spec sheet sets for each, side by side.

Builds Llama-3-8B- and Phi-3-mini-shaped models from their transformers configs (full depth, bfloat16,
random weights: the cost of the PCA and of slicing does not depend on the weights' values) directly on the
device (meta device → `to_empty` → in-place normal draws), so no checkpoint and no network is needed. Per
model it measures, in this order:

- eval tokens/s of the dense model (plain forward over random 2048-token windows, best of `--reps`);
- greedy generation tokens/s of the dense model (batch 1, KV cache);
- calibrate+slice (interleaved SliceGPT, `core.slicing.slice_model`, in place) at s = 0.25 on 128 × 2048
  random calibration tokens;
- the same eval and generation on the sliced model;
- the peak device memory of each phase (`torch.cuda.max_memory_allocated`; on the CPU the process's peak
  RSS, which only grows).

Bounds (spec-sheet peak values of the GPU it runs on, `SPECS`; none for an unknown GPU or the CPU):
eval ≤ peak bf16 FLOP/s / (2 · MACs per token); generation ≤ HBM bandwidth / weight bytes read per token
(every linear map once; the KV cache is not counted); calibrate+slice ≥ the calibration forward at the
bf16 peak plus the float64 second moments (2 · tokens · D² per site) at the fp64 peak (eigendecompositions,
rotations and the sliced writes are not counted, so the real floor is higher).

`--tiny` shrinks both configs (2 layers, width 128, vocab 1024) and the sizes, and runs in float32 on the
CPU in seconds (`--dtype bfloat16` works there too): CI runs it so the script cannot rot
(`tests/integration/test_bench_gpu.py`). Without CUDA the script runs the tiny mode and says so.

On the project's GPU machine (torch, transformers, einops and jaxtyping are there; no install needed):
    PYTHONPATH=. python3 bench/bench_gpu.py --json $OUT/bench_gpu.json

    python bench/bench_gpu.py [--models llama3-8b,phi3-mini] [--reps 2] [--dtype D] [--json PATH|-] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
from jaxtyping import Int
from torch import Tensor
from transformers import AutoModelForCausalLM, LlamaConfig, Phi3Config, PreTrainedConfig

from slicedim_lab.core.size import count_params, macs_per_token
from slicedim_lab.core.slicing import slice_model
from slicedim_lab.core.widths import dim_for_sparsity, model_site_dims

SPARSITY = 0.25

# the real sizes (Meta-Llama-3-8B, Phi-3-mini-4k); untied heads, as both models have
SHAPES: dict[str, tuple[type, dict]] = {
    "llama3-8b": (LlamaConfig, dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                                    num_key_value_heads=8, intermediate_size=14336, vocab_size=128256,
                                    rope_theta=500000.0, max_position_embeddings=8192)),
    "phi3-mini": (Phi3Config, dict(hidden_size=3072, num_hidden_layers=32, num_attention_heads=32,
                                   num_key_value_heads=32, intermediate_size=8192, vocab_size=32064,
                                   max_position_embeddings=4096, original_max_position_embeddings=4096)),
}
TINY = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=256, vocab_size=1024, max_position_embeddings=512,
            original_max_position_embeddings=512)


@dataclass(frozen=True)
class Sizes:
    """Window counts and lengths of one benchmark run."""

    cal: tuple[int, int]  # calibration windows × tokens
    eval: tuple[int, int]  # eval windows × tokens
    eval_batch: int
    cal_batch: int
    prompt: int  # generation prompt tokens (batch 1)
    new_tokens: int


FULL = Sizes(cal=(128, 2048), eval=(8, 2048), eval_batch=4, cal_batch=8, prompt=128, new_tokens=128)
SMALL = Sizes(cal=(8, 64), eval=(4, 64), eval_batch=2, cal_batch=4, prompt=16, new_tokens=16)


@dataclass(frozen=True)
class GPUSpec:
    """Spec-sheet peaks of one GPU (dense, no structured sparsity)."""

    name: str
    bf16_tflops: float
    fp64_tflops: float
    hbm_tbps: float


# matched in order against torch.cuda.get_device_properties(...).name (and, for the A100, its memory)
SPECS: list[tuple[str, GPUSpec]] = [
    ("H200", GPUSpec("H200 SXM", 989.0, 67.0, 4.8)),
    ("H100 PCIe", GPUSpec("H100 PCIe", 756.0, 51.0, 2.0)),
    ("H100", GPUSpec("H100 SXM", 989.0, 67.0, 3.35)),
    ("A100-80", GPUSpec("A100 80GB SXM", 312.0, 19.5, 2.039)),
    ("A100", GPUSpec("A100 40GB", 312.0, 19.5, 1.555)),
    ("L40S", GPUSpec("L40S", 362.0, 1.4, 0.864)),
    ("L4", GPUSpec("L4", 121.0, 0.47, 0.3)),
    ("RTX 4090", GPUSpec("RTX 4090", 165.2, 1.29, 1.008)),
]


def gpu_spec(device: torch.device) -> GPUSpec | None:
    """The spec-sheet entry of the GPU `device` is, or None (the CPU, or a GPU not in `SPECS`)."""
    if device.type != "cuda":
        return None
    props = torch.cuda.get_device_properties(device)
    name = props.name.replace("-", " ")
    for key, spec in SPECS:
        if key == "A100-80":
            if "A100" in name and props.total_memory > 60 * 2**30:
                return spec
        elif key in name:
            return spec
    return None


# ----------------------------------------------------------------------------- models


def model_config(shape: str, tiny: bool) -> PreTrainedConfig:
    """The transformers config of a named shape (the tiny variant with `tiny`), untied, SDPA attention."""
    cls, sizes = SHAPES[shape]
    if tiny:
        sizes = {**sizes, **{k: v for k, v in TINY.items() if k in sizes}}
    cfg = cls(**sizes, tie_word_embeddings=False, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
              pad_token_id=0, hidden_act="silu")
    cfg._attn_implementation = "sdpa"
    return cfg


def _reset_rotary(model: nn.Module) -> None:
    """Recompute the rotary embeddings' non-persistent buffers, which `to_empty` leaves uninitialised."""
    for module in model.modules():
        if type(module).__name__.endswith("RotaryEmbedding"):
            fresh = type(module)(module.config)
            for name, buf in fresh.named_buffers(recurse=False):
                getattr(module, name).copy_(buf)


@torch.no_grad()
def build_model(cfg: PreTrainedConfig, device: torch.device, dtype: torch.dtype, seed: int = 0) -> nn.Module:
    """A random-weight model of `cfg` allocated on `device` (never on the host): norm scales 1, other
    vectors 0, matrices N(0, 0.02²), drawn in place with a device generator."""
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    model.to_empty(device=device)
    g = torch.Generator(device=device).manual_seed(seed)
    for name, p in model.named_parameters():
        if p.ndim == 1:
            p.fill_(1.0 if "norm" in name else 0.0)
        else:
            p.normal_(0.0, 0.02, generator=g)
    _reset_rotary(model)
    model.generation_config.pad_token_id = cfg.pad_token_id
    return model.eval()


def random_ids(n: int, seqlen: int, vocab: int, device: torch.device, seed: int) -> Int[Tensor, "n seqlen"]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, vocab, (n, seqlen), generator=g).to(device)


# ----------------------------------------------------------------------------- measuring


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gb(device: torch.device) -> float:
    """Peak device memory since the last reset (CUDA), or the process's peak RSS (CPU), in GB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def timed(fn: Callable[[], object], device: torch.device) -> tuple[object, float]:
    """(fn(), wall seconds), the device synchronised on both ends."""
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - t0


@torch.no_grad()
def eval_tokens_per_s(model: nn.Module, ids: Int[Tensor, "n seq"], batch_size: int, reps: int) -> float:
    """Best-of-`reps` plain-forward throughput over `ids` (after one warm-up batch)."""
    dev = ids.device
    model(input_ids=ids[:batch_size], use_cache=False)

    def run() -> None:
        for b in torch.split(ids, batch_size):
            model(input_ids=b, use_cache=False)

    return max(ids.numel() / timed(run, dev)[1] for _ in range(reps))


@torch.no_grad()
def generate_tokens_per_s(model: nn.Module, prompt: Int[Tensor, "1 pos"], new_tokens: int) -> float:
    """Greedy generation throughput (new tokens / s) at batch 1 with the KV cache, after a short warm-up."""
    def gen(n: int) -> Tensor:
        return model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n,
                              min_new_tokens=n, do_sample=False, pad_token_id=0)

    gen(4)
    out, secs = timed(lambda: gen(new_tokens), prompt.device)
    return (out.shape[1] - prompt.shape[1]) / secs


# ----------------------------------------------------------------------------- bounds


def eval_bound(model: nn.Module, seqlen: int, spec: GPUSpec | None) -> float | None:
    """tokens/s ≤ peak bf16 FLOP/s / (2 · MACs per token at this window length)."""
    if spec is None:
        return None
    return spec.bf16_tflops * 1e12 / (2 * macs_per_token(model, seqlen)["total"])


def generate_bound(model: nn.Module, spec: GPUSpec | None) -> float | None:
    """tokens/s ≤ bandwidth / bytes of the linear maps' weights (each read once per token at batch 1)."""
    if spec is None:
        return None
    nbytes = next(model.parameters()).element_size() * macs_per_token(model, 1)["linear"]
    return spec.hbm_tbps * 1e12 / nbytes


def slice_bound(model: nn.Module, cal: tuple[int, int], n_sites: int, spec: GPUSpec | None) -> float | None:
    """seconds ≥ calibration forward at the bf16 peak + float64 second moments (2 T D² per site) at the fp64
    peak."""
    if spec is None:
        return None
    tokens, D = cal[0] * cal[1], model.config.hidden_size
    forward = 2 * macs_per_token(model, cal[1])["total"] * tokens / (spec.bf16_tflops * 1e12)
    return forward + n_sites * 2 * tokens * D * D / (spec.fp64_tflops * 1e12)


# ----------------------------------------------------------------------------- one model


@dataclass
class Row:
    """One measured quantity, its unit, its bound (None: unknown) and the phase's peak memory."""

    model: str
    what: str
    measured: float
    unit: str
    bound: float | None
    peak_gb: float

    @property
    def of_bound(self) -> float | None:
        """Measured as a fraction of the bound (times: bound / measured; rates: measured / bound)."""
        if self.bound is None or self.measured <= 0:
            return None
        return self.bound / self.measured if self.unit == "s" else self.measured / self.bound


def _phase(model: str, what: str, unit: str, device: torch.device, log: Callable[[str], None],
           bound: float | None, fn: Callable[[], float]) -> Row:
    """Run one measurement with the device's peak memory counter reset: its row."""
    _reset_peak(device)
    value = fn()
    log(f"  {what}: {value:,.1f} {unit}")
    return Row(model, what, value, unit, bound, peak_gb(device))


@dataclass
class Inputs:
    """The random token windows every phase of one model runs on."""

    ids: Int[Tensor, "n seq"]
    prompt: Int[Tensor, "1 pos"]
    cal: Int[Tensor, "m cal"]


def _speed(model: nn.Module, shape: str, label: str, inp: Inputs, sizes: Sizes, reps: int,
           spec: GPUSpec | None, log: Callable[[str], None]) -> list[Row]:
    """Eval and generation throughput of one model (dense or sliced), each with its bound."""
    dev, seq = inp.ids.device, inp.ids.shape[1]
    return [
        _phase(shape, f"eval {label}", "tok/s", dev, log, eval_bound(model, seq, spec),
               lambda: eval_tokens_per_s(model, inp.ids, sizes.eval_batch, reps)),
        _phase(shape, f"generate {label}", "tok/s", dev, log, generate_bound(model, spec),
               lambda: generate_tokens_per_s(model, inp.prompt, sizes.new_tokens)),
    ]


def _slice(model: nn.Module, shape: str, inp: Inputs, sizes: Sizes, spec: GPUSpec | None,
           log: Callable[[str], None]) -> tuple[nn.Module, Row]:
    """Calibrate and slice `model` in place at s = SPARSITY: the sliced model and the timing row."""
    dims = model_site_dims(model, sparsity=SPARSITY)
    bound = slice_bound(model, sizes.cal, len(dims), spec)
    box: dict = {}

    def run() -> float:
        res, secs = timed(lambda: slice_model(model, inp.cal, dims, batch_size=sizes.cal_batch, inplace=True,
                                              progress=False), inp.cal.device)
        box["sliced"] = res.model
        return secs

    what = f"calibrate+slice {sizes.cal[0]}x{sizes.cal[1]}, s={SPARSITY}"
    row = _phase(shape, what, "s", inp.cal.device, log, bound, run)
    return box["sliced"], row


def bench_model(shape: str, sizes: Sizes, device: torch.device, dtype: torch.dtype, tiny: bool, reps: int,
                log: Callable[[str], None]) -> tuple[list[Row], dict]:
    """Every measurement of one model shape (see the module docstring), in order."""
    spec = gpu_spec(device)
    model, build_s = timed(lambda: build_model(model_config(shape, tiny), device, dtype), device)
    cfg, params_dense = model.config, count_params(model)
    log(f"{shape}: {params_dense / 1e9:.3f}B parameters, D={cfg.hidden_size}, L={cfg.num_hidden_layers}, "
        f"{str(dtype).removeprefix('torch.')}, built on {device.type} in {build_s:.1f} s")
    vocab = cfg.vocab_size
    inp = Inputs(ids=random_ids(*sizes.eval, vocab, device, seed=1),
                 prompt=random_ids(1, sizes.prompt, vocab, device, seed=2),
                 cal=random_ids(*sizes.cal, vocab, device, seed=3))
    rows = _speed(model, shape, "dense", inp, sizes, reps, spec, log)
    sliced, row = _slice(model, shape, inp, sizes, spec, log)  # in place: the dense model is consumed
    del model  # what is left of it (not the sliced model's tensors) leaves the device
    rows += [row, *_speed(sliced, shape, f"sliced s={SPARSITY}", inp, sizes, reps, spec, log)]
    info = {"params_dense": params_dense, "params_sliced": count_params(sliced),
            "dim": dim_for_sparsity(SPARSITY, cfg.hidden_size),
            "hidden_size": cfg.hidden_size, "layers": cfg.num_hidden_layers, "build_s": build_s}
    return rows, info


# ----------------------------------------------------------------------------- output


COLUMNS = ("model", "measurement", "measured", "unit", "bound", "% of bound", "peak mem GB")


def _num(v: float | None, fmt: str = ",.1f") -> str:
    return "n/a" if v is None else format(v, fmt)


def format_table(rows: list[Row]) -> str:
    """A markdown table, one row per measurement, with every column of `COLUMNS`."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        pct = None if r.of_bound is None else 100 * r.of_bound
        lines.append(f"| {r.model} | {r.what} | {_num(r.measured)} | {r.unit} | {_num(r.bound)} | "
                     f"{_num(pct, '.0f')} | {r.peak_gb:.2f} |")
    return "\n".join(lines)


def device_line(device: torch.device, spec: GPUSpec | None, tiny: bool) -> str:
    """What ran where, and which bounds apply."""
    if device.type != "cuda":
        return (f"device: CPU ({torch.get_num_threads()} threads){', tiny mode' if tiny else ''}; no bounds "
                "(they are GPU spec-sheet values); peak memory = the process's peak RSS")
    props = torch.cuda.get_device_properties(device)
    where = f"device: {props.name}, {props.total_memory / 2**30:.0f} GiB{', tiny mode' if tiny else ''}"
    if spec is None:
        return where + "; not in SPECS: no bounds"
    return (where + f"; bounds from the {spec.name} spec sheet: {spec.bf16_tflops:g} TFLOP/s bf16, "
            f"{spec.fp64_tflops:g} TFLOP/s fp64, {spec.hbm_tbps:g} TB/s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(SHAPES), help=f"comma-separated of: {', '.join(SHAPES)}")
    ap.add_argument("--tiny", action="store_true", help="tiny configs and sizes, float32 on the CPU")
    ap.add_argument("--device", default="auto", help="auto | cuda | cpu (the CPU runs the tiny mode only)")
    ap.add_argument("--dtype", default=None, choices=("bfloat16", "float32"),
                    help="default: bfloat16 on CUDA, float32 on the CPU")
    ap.add_argument("--reps", type=int, default=2, help="eval repetitions, best taken (default 2)")
    ap.add_argument("--json", default=None, metavar="PATH|-", help="also write the rows as JSON")
    args = ap.parse_args(argv)
    bad = [m for m in args.models.split(",") if m not in SHAPES]
    if bad:
        ap.error(f"unknown model shape {bad[0]!r}; choose from {', '.join(SHAPES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cuda = torch.cuda.is_available() and args.device != "cpu"
    device = torch.device("cuda" if cuda else "cpu")
    if not cuda and not args.tiny:
        print("no CUDA device: running the tiny mode on the CPU (--tiny)", file=sys.stderr)
        args.tiny = True
    sizes = SMALL if args.tiny else FULL
    dtype = getattr(torch, args.dtype or ("bfloat16" if cuda else "float32"))
    log = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json == "-" else \
        (lambda m: print(m, flush=True))
    spec = gpu_spec(device)
    log(device_line(device, spec, args.tiny))
    t0 = time.perf_counter()
    rows, infos = [], {}
    for shape in args.models.split(","):
        r, infos[shape] = bench_model(shape, sizes, device, dtype, args.tiny, args.reps, log)
        rows += r
    log("")
    log(format_table(rows))
    log(f"\ntotal {time.perf_counter() - t0:.0f} s; % of bound: measured rate / bound, or bound / measured "
        "time (bounds: spec-sheet peaks, see the module docstring)")
    payload = {"device": device_line(device, spec, args.tiny), "spec": asdict(spec) if spec else None,
               "tiny": args.tiny, "sizes": asdict(sizes), "models": infos,
               "rows": [{**asdict(r), "of_bound": r.of_bound} for r in rows]}
    if args.json == "-":
        print(json.dumps(payload, indent=1))
    elif args.json:
        from slicedim_lab.files import write_json

        write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
