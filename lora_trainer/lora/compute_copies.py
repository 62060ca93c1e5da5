"""Half-precision compute copies of the trained weights beside fp32 masters the optimizer steps.

Under autocast an fp32 weight is cast to bf16 on every use and its gradient cast back: two extra kernels per
weight per step. With compute copies that work is one batched copy of all gradients to the masters and one of
the masters back after the optimizer step.

In bf16 a plain LoRA layer's up-projection copy holds ``scale·B`` (scale = alpha / rank), so its forward adds
the product unscaled: otherwise the matrix product's scale makes autograd multiply both of the product's
gradients by it, two more kernels per layer in every backward pass (about 350 of SD1.5's 3,000). The masters
keep ``B``; the up-projection's gradient reaches its master multiplied by the scale in fp32, the product's
other gradient already carries it. bf16 has fp32's exponent range, so the scaled copy loses nothing; fp16
(5 exponent bits) keeps plain copies, since small weights times a small scale would fall below its normal
range.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import layers as L
from .layers import ADAPTER
from .tensor_lists import add_scaled_into, copy_into, copy_scaled_into, scale_in_place

FOLDED = "lora_trainer_scale_in_up"   # layer attribute: its lora_B compute copy holds scale·B


def layer_scale(layer: nn.Module) -> float:
    """The factor a LoRA layer's forward gives its up-projection: 1 when the compute copy already holds it."""
    return 1.0 if getattr(layer, FOLDED, False) else layer.scaling[ADAPTER]


class ComputeCopies:
    """The masters and compute copies of a ``LoraNetwork`` (which supplies ``modules()`` and ``parameters()``)."""

    masters: dict[nn.Parameter, nn.Parameter]   # compute weight → fp32 master (if split)
    folded: dict[nn.Parameter, float]           # lora_B compute weight → the scale its copy holds
    lean_forward: bool

    def use_compute_dtype(self, dtype: torch.dtype) -> None:
        """Compute with ``dtype`` copies of the trained weights; the optimizer keeps fp32 masters."""
        if dtype == torch.float32 or self.masters:
            return
        for p in self.parameters():
            master = nn.Parameter(p.detach().float().clone())
            p.data = p.data.to(dtype)
            self.masters[p] = master
        self.fold_scales(dtype == torch.bfloat16)

    @torch.no_grad()
    def set_compute_dtype(self, dtype: torch.dtype) -> None:
        """Switch the compute copies' precision; fp32 makes them share the masters' storage
        (the plain fp32-weights-under-autocast setup the benchmark's baseline measures)."""
        self._mark_folds(False)
        for p, master in self.masters.items():
            p.data = master.data if dtype == torch.float32 else master.data.to(dtype)
        self.fold_scales(dtype == torch.bfloat16)

    @torch.no_grad()
    def fold_scales(self, enabled: bool) -> None:
        """Whether plain LoRA layers (our forward, no DoRA) hold their scale in the up-projection's compute
        copy; the copies are rewritten from the masters either way."""
        self._mark_folds(enabled)
        self.masters_to_compute()

    def _mark_folds(self, enabled: bool) -> None:
        for _, _, layer in self.modules():
            if hasattr(layer, FOLDED):
                delattr(layer, FOLDED)
        self.folded = {}
        if enabled and self.masters and self.lean_forward:
            for _, _, layer in self.modules():
                scale = float(layer.scaling[ADAPTER]) if L.layer_algo(layer) == "lora" else 1.0
                up = layer.lora_B[ADAPTER].weight if scale != 1.0 else None
                if up is not None and getattr(layer, L.DORA, None) is None and up in self.masters:
                    setattr(layer, FOLDED, True)
                    self.folded[up] = scale

    def master(self, weight: nn.Parameter) -> torch.Tensor:
        """The fp32 value of a trained weight (its master when compute copies are used)."""
        return self.masters.get(weight, weight)

    def optimizer_parameters(self, prefixes: tuple[str, ...] | None = None) -> list[nn.Parameter]:
        return [self.masters.get(p, p) for p in self.parameters(prefixes)]

    @torch.no_grad()
    def grads_to_masters(self, keep: bool = False, add: bool = False) -> None:
        """The compute copies' gradients into fp32 gradients of the masters (``add``: added to them).

        Missing master gradients are views into one new buffer: one large allocation, which
        reuses the memory the backward pass has just freed, where a tensor per weight would each
        come from the allocator's separate pool of small blocks and add to the reserved memory
        (0.3 GB at SDXL rank 32). ``keep``: the buffer stays between steps (a captured graph
        writes into it on every replay) and is made by a step that is not a graph capture."""
        if not self.masters:
            return
        plain, scaled, missing = [], [], []
        for p, master in self.masters.items():
            if p.grad is None:
                if not keep:
                    master.grad = None  # unused this step: no stale gradient may be applied
                continue
            if master.grad is None:
                missing.append(master)
            scale = self.folded.get(p)
            (plain if scale is None else scaled).append((master, p.grad, scale))
            p.grad = None
        if missing:
            if keep and torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
                # made during capture, the buffer would be the graph's memory; capture fails and the step stays eager
                raise RuntimeError("gradient buffers must exist before capture")  # internal: caught by GraphedStep
            make = torch.zeros if add else torch.empty   # overwritten below unless added to
            flat = make(sum(m.numel() for m in missing), dtype=missing[0].dtype, device=missing[0].device)
            offset = 0
            for master in missing:
                master.grad = flat[offset:offset + master.numel()].view_as(master)
                offset += master.numel()
        pairs = plain + scaled
        if not pairs:
            return
        targets, grads = [m.grad for m, _, _ in pairs], [g for _, g, _ in pairs]
        if add:
            if plain:
                torch._foreach_add_(targets[:len(plain)], grads[:len(plain)])
            if scaled:
                add_scaled_into(targets[len(plain):], grads[len(plain):], [s for _, _, s in scaled])
        else:
            copy_into(targets, grads)
            if scaled:
                scale_in_place(targets[len(plain):], [s for _, _, s in scaled])

    @torch.no_grad()
    def masters_to_compute(self) -> None:
        if not self.masters:
            return
        folded = self.folded
        plain = [(p, m) for p, m in self.masters.items() if p not in folded]
        if plain:
            copy_into([p for p, _ in plain], [m for _, m in plain])
        if folded:
            copy_scaled_into(list(folded), [self.masters[p] for p in folded], list(folded.values()))
