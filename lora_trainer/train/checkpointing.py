"""Gradient checkpointing of the UNet's blocks (its ResNets and transformer blocks) and of trained text encoders.

Three choices, each giving the plain step's gradients:
- the RNG state is saved and restored around a block only when something in it draws random numbers (LoRA
  dropout): it cannot be read while a CUDA graph is captured, and otherwise it is work for nothing;
- the eager step of one process checkpoints reentrantly: the first forward pass runs without autograd, and no
  Python hook runs for every tensor a block saves. Non-reentrant checkpointing calls two hooks per saved
  tensor, about 5,700 for an SDXL step, which an eager step pays on the CPU while the GPU waits (the same
  SDXL UNet with thin layers on the CPU, where the step is its operations' dispatch: 660 → 550 ms). Blocks
  whose inputs need no gradient, several processes (DDP) and the captured step stay non-reentrant;
- the captured step keeps the self-attention outputs (selective checkpointing, ``keep_attention``).

diffusers 0.32 and later take the function that checkpoints a block (``enable_gradient_checkpointing``);
earlier versions, the WebUIs' 0.31 among them, checkpoint with the RNG state kept and cannot be told
otherwise: there the blocks' own checkpointing is turned off and each block's forward runs through ours. Text
encoders are checkpointed by transformers, non-reentrant; transformers before 4.35 (A1111's) takes no arguments
and leaves the kind to torch's default, so there each CLIP layer's forward runs through ours.
"""
from __future__ import annotations

import functools
from typing import Callable, Optional

import torch

CHECKPOINTED_BLOCKS = ("ResnetBlock2D", "BasicTransformerBlock")   # what diffusers checkpoints, every version
ATTENTION_OPS = ("_scaled_dot_product_flash_attention", "_scaled_dot_product_cudnn_attention",
                 "_scaled_dot_product_efficient_attention", "_scaled_dot_product_flash_attention_for_cpu")


def checkpoint_unet_blocks(unet, *, keep_rng: bool = False, reentrant: bool = False, keep_attention: bool = False,
                           lora_rank: Optional[int] = None, wrap_blocks: bool = True) -> bool:
    """Checkpoint ``unet``'s blocks (the module docstring says how). ``keep_rng``: LoRA dropout is on.
    ``reentrant``: the eager step of a single process. ``keep_attention``: the captured step; the last
    checkpointed block, recomputed right after it ran, runs plainly (it costs no extra peak memory).
    ``wrap_blocks`` false keeps diffusers' own checkpointing where it takes no function (compiled blocks
    are not wrapped). Returns whether these settings are in place."""
    context_fn = keep_self_attention_outputs(lora_rank) if keep_attention else None
    run = _block_checkpoint(keep_rng=keep_rng, reentrant=reentrant and not keep_attention, context_fn=context_fn,
                            last=last_checkpointed_module(unet) if keep_attention else None)
    _unwrap_blocks(unet)
    try:
        unet.enable_gradient_checkpointing(gradient_checkpointing_func=lambda block, *args: run(block, block, *args))
        return True
    except TypeError:   # diffusers before 0.32
        pass
    if not wrap_blocks:
        unet.enable_gradient_checkpointing()
        return False
    unet.disable_gradient_checkpointing()   # one checkpoint per block: ours
    for module in unet.modules():
        if type(module).__name__ in CHECKPOINTED_BLOCKS:
            module.forward = _CheckpointedForward(module, run)
    return True


def _block_checkpoint(*, keep_rng: bool, reentrant: bool, context_fn, last) -> Callable:
    from torch.utils.checkpoint import checkpoint

    extra = {"context_fn": context_fn} if context_fn is not None else {}

    def run(block, fn, *args, **kwargs):
        if block is last:
            return fn(*args, **kwargs)
        if reentrant and _any_needs_grad(args, kwargs):
            names, count = tuple(kwargs), len(args)

            def positional(*values):   # a reentrant checkpoint tracks positional tensors only
                return fn(*values[:count], **dict(zip(names, values[count:])))
            return checkpoint(positional, *args, *kwargs.values(), use_reentrant=True, preserve_rng_state=keep_rng)
        # without an input that needs a gradient a reentrant block would pass none to its LoRA weights
        return checkpoint(fn, *args, use_reentrant=False, preserve_rng_state=keep_rng, **extra, **kwargs)
    return run


def _any_needs_grad(args, kwargs) -> bool:
    return any(isinstance(v, torch.Tensor) and v.requires_grad for v in (*args, *kwargs.values()))


class _CheckpointedForward:
    """A block's forward through ``checkpoint`` while autograd records (diffusers before 0.32); ``inner``: the
    forward it had (the unit-scale ResNet's, or None for the class's own)."""

    def __init__(self, block: torch.nn.Module, run: Callable) -> None:
        self.block, self.run = block, run
        self.set_inner(block.__dict__.get("forward"))

    def set_inner(self, forward: Optional[Callable]) -> None:
        self.inner = forward
        self.plain = forward or type(self.block).forward.__get__(self.block)

    def __call__(self, *args, **kwargs):
        if not torch.is_grad_enabled():
            return self.plain(*args, **kwargs)
        return self.run(self.block, self.plain, *args, **kwargs)


def set_block_forward(block: torch.nn.Module, forward: Optional[Callable]) -> None:
    """Give ``block`` ``forward`` (None: its class's own), under our checkpointing if the block has it."""
    wrapper = block.__dict__.get("forward")
    if isinstance(wrapper, _CheckpointedForward):
        wrapper.set_inner(forward)
    elif forward is None:
        block.__dict__.pop("forward", None)
    else:
        block.forward = forward


def _unwrap_blocks(unet) -> None:
    for module in unet.modules():
        wrapped = module.__dict__.get("forward")
        if isinstance(wrapped, _CheckpointedForward):
            if wrapped.inner is None:
                del module.forward
            else:
                module.forward = wrapped.inner


def keep_self_attention_outputs(lora_rank: Optional[int] = None):
    """A ``context_fn`` for ``checkpoint``: the recomputation skips the self-attention kernels and
    takes their outputs (and what their backward needs) from the forward pass, which saves the
    attention's share of the recomputed forward for about one activation per transformer block;
    everything else is still recomputed. With ``lora_rank``, the LoRA down-projections' outputs
    (tokens × rank, a few hundred KB each) are kept too: in a captured step each of those small
    matrix products costs a kernel of its own. None when this torch has no selective checkpointing."""
    try:
        from torch.utils.checkpoint import create_selective_checkpoint_contexts
    except ImportError:
        return None
    policy = functools.partial(checkpoint_policy, lora_rank=lora_rank)
    return lambda: create_selective_checkpoint_contexts(policy)


def checkpoint_policy(ctx, op, *args, lora_rank: Optional[int] = None, **kwargs):
    """Save an attention kernel's outputs when queries and keys have the same length (self-attention;
    cross-attention over 77 tokens is cheap to redo) and, with ``lora_rank``, a matrix product that
    projects down to that rank (LoRA's A: ``x @ A.T`` with A of shape rank × in, in > rank);
    recompute everything else."""
    from torch.utils.checkpoint import CheckpointPolicy

    if op in _attention_ops():
        self_attention = len(args) > 1 and args[0].shape[-2] == args[1].shape[-2]
        return CheckpointPolicy.MUST_SAVE if self_attention else CheckpointPolicy.PREFER_RECOMPUTE
    if lora_rank and op is torch.ops.aten.mm.default and len(args) > 1:
        weight = args[1]
        if weight.dim() == 2 and weight.shape[1] == lora_rank and weight.shape[0] > lora_rank:
            return CheckpointPolicy.MUST_SAVE
    return CheckpointPolicy.PREFER_RECOMPUTE


@functools.lru_cache(maxsize=1)
def _attention_ops() -> frozenset:
    return frozenset(getattr(torch.ops.aten, name).default for name in ATTENTION_OPS if hasattr(torch.ops.aten, name))


def last_checkpointed_module(unet) -> Optional[torch.nn.Module]:
    """The module diffusers checkpoints last in the forward pass (the last transformer block or
    ResNet of the last up block), whose backward comes first."""
    block = unet.up_blocks[-1] if getattr(unet, "up_blocks", None) else None
    if block is None:
        return None
    attentions = getattr(block, "attentions", None)
    if attentions:
        blocks = getattr(attentions[-1], "transformer_blocks", None)
        return blocks[-1] if blocks else None
    resnets = getattr(block, "resnets", None)
    return resnets[-1] if resnets else None


def text_encoder_checkpointing(text_encoder, keep_rng: bool) -> None:
    """Checkpoint a trained text encoder's layers, non-reentrant. Without ``keep_rng`` the RNG
    state is not saved around each layer (it cannot be read during graph capture): only valid
    when nothing in the encoder draws random numbers (no LoRA dropout, CLIP's dropout 0)."""
    config = getattr(text_encoder, "config", None)
    keep_rng = keep_rng or bool(getattr(config, "dropout", 0) or getattr(config, "attention_dropout", 0))
    try:
        text_encoder.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False, "preserve_rng_state": keep_rng})
        return
    except TypeError:   # transformers before 4.35 (A1111's 4.30) takes no arguments
        pass
    layers = text_encoder_layers(text_encoder)
    if layers is None:   # an encoder of another layout: its own checkpointing, reentrant, whose segments pass
        # gradients to the LoRA weights inside them only when their input requires them
        text_encoder.gradient_checkpointing_enable()
        text_encoder.enable_input_require_grads()
        return
    # its own would call torch's checkpoint without saying which kind (torch warns that this will fail)
    run = _block_checkpoint(keep_rng=keep_rng, reentrant=False, context_fn=None, last=None)
    for layer in layers:
        if not isinstance(layer.__dict__.get("forward"), _CheckpointedForward):
            layer.forward = _CheckpointedForward(layer, run)


def text_encoder_layers(text_encoder) -> Optional[torch.nn.ModuleList]:
    """A CLIP text encoder's transformer layers (``text_model.encoder.layers``), None for another layout."""
    model = getattr(text_encoder, "text_model", text_encoder)
    layers = getattr(getattr(model, "encoder", None), "layers", None)
    return layers if isinstance(layers, torch.nn.ModuleList) and len(layers) else None
