"""A TransformerLens 4.x `TransformerBridge` over a transformers model the package loaded, and its hook names.

TransformerLens 4 has no `HookedTransformer`; its `TransformerBridge` wraps the HF modules in place and gives
them HookedTransformer-style hook names. Found empirically (transformer-lens 4.3, transformers 5.x) for Llama,
Mistral, Qwen2 and Phi-3 (all four boot; 148-151 hook points for 3 layers), GPT-NeoX, GPT-2, OPT, Phi-2,
Gemma and Qwen3:

- `hook_embed` (alias of `embed.hook_out`): the embedding output, before block 0.
- `blocks.{i}.hook_resid_pre` (= `blocks.{i}.hook_in`): the residual entering block i.
- `blocks.{i}.hook_attn_out` (= `attn.hook_out`) and `blocks.{i}.hook_mlp_out` (= `mlp.hook_out`): what the
  attention / MLP block adds to the residual. Writing these changes the residual stream.
- `blocks.{i}.hook_resid_mid` (= `ln2.hook_in`): the input of the pre-MLP norm. Its VALUE is the residual
  after attention, but a value WRITTEN there reaches the MLP only, not the skip connection (HF decoder layers
  keep their own reference to the residual). Read it; never write it.
- `blocks.{i}.hook_resid_post` (= `blocks.{i}.hook_out`): the residual leaving block i.
- parallel blocks (GPT-NeoX with `use_parallel_residual`, Phi-2): no `hook_resid_mid`; `hook_resid_post` =
  `hook_resid_pre` + `hook_attn_out` + `hook_mlp_out` (attention runs first).
- post-norm blocks (Gemma 3): `hook_attn_out` / `hook_mlp_out` are the blocks' outputs BEFORE their output
  norms; what is added to the residual is `blocks.{i}.ln1_post.hook_out` / `ln2_post.hook_out`, and writing
  those changes the residual stream.
- `hook_pos_embed` (GPT-2, OPT: the learned position embeddings); a value written at
  `blocks.0.hook_resid_pre` (their sum with the token embeddings) does reach block 0's skip path.
- `ln_final.hook_in`, `ln_final.hook_normalized`, `ln_final.hook_out`, `unembed.hook_in`, `unembed.hook_out`
  (= `hook_unembed`, the logits); readers/writers: `blocks.{i}.attn.{q,k,v,o}.hook_{in,out}`,
  `blocks.{i}.mlp.{gate,in,out}.hook_{in,out}` (Phi-3's fused qkv/gate_up maps are split into the same names).

Traps handled here: the bridge rewires the model it is given (wraps submodules, forces eager attention), so
by default it gets a deep copy; an in-memory tokenizer that has a BOS token crashes booting (TransformerLens
reloads it from `name_or_path`), so it is saved to a temporary folder and reloaded from there during the boot.
The bridge's tokenizer then has `add_bos_token=True`: it prepends BOS to *strings*; the functions of this
package always pass token ids, which are used as given.
"""

from __future__ import annotations

import copy as _copy
import tempfile
import warnings

import torch.nn as nn
from transformers import AutoTokenizer

from ..adapters import adapter_for
from ..errors import UsageError
from .sites import Site, is_parallel, model_sites, n_sites, site_at

BLOCK_HOOKS = ("hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post",
               "attn.o.hook_in", "attn.o.hook_out", "mlp.out.hook_in", "mlp.out.hook_out")
POST_NORM_HOOKS = ("ln1_post.hook_out", "ln2_post.hook_out")  # the writes of post-norm blocks
# a parallel block has no residual between its attention and its MLP
PARALLEL_BLOCK_HOOKS = tuple(h for h in BLOCK_HOOKS if h != "hook_resid_mid")


def required_hooks(n_layers: int, parallel: bool = False, post_norm: bool = False) -> list[str]:
    """Every hook name the emulation and the flow metrics use."""
    names = ["hook_embed", "ln_final.hook_in", "unembed.hook_out"]
    block = PARALLEL_BLOCK_HOOKS if parallel else BLOCK_HOOKS + (POST_NORM_HOOKS if post_norm else ())
    for i in range(n_layers):
        names += [f"blocks.{i}.{h}" for h in block]
    return names


def bridge_sites(bridge) -> list[Site]:
    """The site list of the model a bridge wraps (recorded by `boot_bridge`; else from the bridge config)."""
    sites = getattr(bridge, "slicedim_sites", None)
    if sites is not None:
        return list(sites)
    n = bridge.cfg.n_layers
    par = bool(getattr(bridge.cfg, "parallel_attn_mlp", False))
    return [site_at(i, par) for i in range(n_sites(n, par))]


def bridge_centred(bridge) -> bool:
    """Whether the wrapped model's residual stream is compared mean-free (LayerNorm families: their norms
    ignore the mean, and the sliced model holds the centred stream)."""
    return bool(getattr(bridge, "slicedim_centred", False))


def hook_report(bridge) -> dict[str, bool]:
    """Which of the hook names this package relies on the booted bridge provides (aliases included)."""
    known = set(bridge.hook_dict)
    sites = bridge_sites(bridge)
    post = len(sites) > 1 and sites[1].post_norm
    names = required_hooks(bridge.cfg.n_layers, is_parallel(sites), post)
    return {name: name in known for name in names}


def check_hooks(bridge) -> None:
    """One-line UsageError naming the missing hooks, if any."""
    missing = [n for n, ok in hook_report(bridge).items() if not ok]
    if missing:
        raise UsageError(f"TransformerLens bridge for {bridge.cfg.architecture} lacks hooks "
                         f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")


def boot_bridge(model: nn.Module, tokenizer=None, *, copy: bool = True):
    """Boot a `TransformerBridge` over an in-memory transformers model (eval mode, no gradients on weights).

    `copy=False` saves memory but hands `model` itself to the bridge, which rewires it (submodules wrapped,
    eager attention). A failure to boot is a one-line UsageError naming the architecture; the hooks this
    package needs are checked right away."""
    # imported here, not at the top: TransformerLens takes ~10 s to import and only the flow needs it
    from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module

    adapter = adapter_for(model)
    target = _copy.deepcopy(model) if copy else model
    target.eval()
    for p in target.parameters():
        p.requires_grad_(False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if tokenizer is None:
                bridge = build_bridge_from_module(target, adapter.tl_architecture, hf_config=target.config)
            else:
                with tempfile.TemporaryDirectory(prefix="slicedim-tok-") as folder:
                    tokenizer.save_pretrained(folder)
                    tok = AutoTokenizer.from_pretrained(folder)
                    bridge = build_bridge_from_module(target, adapter.tl_architecture,
                                                      hf_config=target.config, tokenizer=tok)
    except Exception as e:  # any boot failure is reported as one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"TransformerLens cannot boot {adapter.tl_architecture}: "
                         f"{type(e).__name__}: {first}") from e
    bridge.eval()
    object.__setattr__(bridge, "slicedim_sites", tuple(model_sites(model)))
    object.__setattr__(bridge, "slicedim_centred", adapter.centred)
    check_hooks(bridge)
    if bridge.cfg.n_layers != model.config.num_hidden_layers:
        raise UsageError(f"bridge sees {bridge.cfg.n_layers} layers, "
                         f"the model has {model.config.num_hidden_layers}")
    return bridge
