"""transformers' Adafactor, stepping the weights of one shape together.

transformers' ``Adafactor.step`` runs a dozen small kernels per weight tensor from Python. A LoRA has
hundreds to thousands of them (SDXL rank 64: about 1,400 in the UNet), so after a replayed CUDA-graph
step its update was most of the step (SDXL 1024² batch 1 with checkpointing on an H200: 473 ms per step
against Prodigy's 125 ms). Its arithmetic is per tensor (moments factored by rows and columns, the
update's RMS clipped per tensor), so the tensors of one shape can be stacked and stepped at once with
the same arithmetic on a leading batch dimension: a few dozen launches per shape instead of a dozen per
tensor. Same options, same results up to the order of floating-point sums (tests/test_grouped_adafactor.py).

The moments of a shape's tensors live stacked in the state of its first tensor (``stack_*``); every
tensor keeps its own ``step`` (and ``RMS`` when ``scale_parameter`` reads it), as in transformers.
"""
from __future__ import annotations

import math
import torch
from transformers.optimization import Adafactor

from ..lora.tensor_lists import copy_into
from ..text.messages import msg
from . import messages  # noqa: F401  (registers the sentences)

CHUNK_ELEMENTS = 1 << 23   # about 32 MB of fp32 per stacked temporary: bounds the update's extra memory
STACKED = ("stack_avg", "stack_row", "stack_col", "stack_sq")


class GroupedAdafactor(Adafactor):
    display_name = "Adafactor"

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for bucket in shape_buckets(group["params"]):
                with_grad = [i for i, p in enumerate(bucket) if p.grad is not None]
                chunk = max(1, CHUNK_ELEMENTS // max(1, bucket[0].numel()))
                for start in range(0, len(with_grad), chunk):
                    self._step_tensors(group, bucket, with_grad[start:start + chunk])
        return loss

    def _stacks(self, group, bucket) -> dict:
        """The bucket's stacked moments (made at its first step), in the state of its first tensor."""
        state = self.state[bucket[0]]
        shape, device = tuple(bucket[0].shape), bucket[0].device
        factored, first_moment = self._get_options(group, shape)
        n, f32 = len(bucket), torch.float32
        if first_moment and "stack_avg" not in state:
            state["stack_avg"] = torch.zeros((n, *shape), dtype=f32, device=device)
        if factored and "stack_row" not in state:
            state["stack_row"] = torch.zeros((n, *shape[:-1]), dtype=f32, device=device)
            state["stack_col"] = torch.zeros((n, *shape[:-2], shape[-1]), dtype=f32, device=device)
        if not factored and "stack_sq" not in state:
            state["stack_sq"] = torch.zeros((n, *shape), dtype=f32, device=device)
        return state

    def _step_tensors(self, group, bucket: list, indices: list[int]) -> None:
        params = [bucket[i] for i in indices]
        n, shape = len(params), tuple(params[0].shape)
        factored, first_moment = self._get_options(group, shape)
        stacks = self._stacks(group, bucket)
        in_order = indices == list(range(indices[0], indices[0] + n))
        index = None if in_order else torch.tensor(indices, device=params[0].device)

        def moment(name: str) -> torch.Tensor:   # these tensors' rows of a stacked moment (a view when in order)
            return stacks[name].narrow(0, indices[0], n) if in_order else stacks[name].index_select(0, index)

        grad = torch.stack([p.grad for p in params]).float()
        weight = torch.stack([p.detach() for p in params]).float()
        steps = []
        for p in params:
            state = self.state[p]
            state["step"] = state.get("step", 0) + 1
            steps.append(state["step"])
        rms = rms_of_each(weight)
        if group["scale_parameter"]:
            for p, value in zip(params, rms):
                self.state[p]["RMS"] = value
        lr = self._learning_rates(group, steps, rms) if group["relative_step"] or group["scale_parameter"] \
            else group["lr"]
        beta2 = one_or_each([1.0 - math.pow(s, group["decay_rate"]) for s in steps], grad.device)

        update = grad ** 2 + group["eps"][0]
        if factored:
            changed = {"stack_row": moment("stack_row"), "stack_col": moment("stack_col")}
            blend(changed["stack_row"], update.mean(dim=-1), beta2)
            blend(changed["stack_col"], update.mean(dim=-2), beta2)
            update = self._approx_sq_grad(changed["stack_row"], changed["stack_col"]).mul_(grad)
        else:
            changed = {"stack_sq": moment("stack_sq")}
            blend(changed["stack_sq"], update, beta2)
            update = changed["stack_sq"].rsqrt().mul_(grad)
        update.div_(along((rms_of_each(update) / group["clip_threshold"]).clamp_(min=1.0), update))
        update.mul_(along(lr, update))
        if first_moment:
            changed["stack_avg"] = avg = moment("stack_avg")
            avg.mul_(group["beta1"]).add_(update, alpha=1 - group["beta1"])
            update = avg
        if group["weight_decay"] != 0:
            if isinstance(lr, torch.Tensor):
                weight.add_(weight * along(-group["weight_decay"] * lr, weight))
            else:
                weight.add_(weight, alpha=-group["weight_decay"] * lr)
        weight.add_(-update)
        copy_into(params, list(weight.unbind(0)))
        if not in_order:
            for name, value in changed.items():
                stacks[name].index_copy_(0, index, value)

    def _learning_rates(self, group, steps: list[int], rms: torch.Tensor) -> torch.Tensor:
        """``_get_lr`` for each tensor: the relative step size from its step count, times its RMS when
        ``scale_parameter``."""
        if group["relative_step"]:
            sizes = [min(1e-6 * s if group["warmup_init"] else 1e-2, 1.0 / math.sqrt(s)) for s in steps]
        else:
            sizes = [group["lr"]] * len(steps)
        size = torch.tensor(sizes, dtype=torch.float32, device=rms.device)
        return size * rms.clamp(min=group["eps"][1]) if group["scale_parameter"] else size

    def load_state_dict(self, state_dict: dict) -> None:
        """Refuse (ValueError) a state whose moments are laid out otherwise, e.g. one saved by
        transformers' Adafactor, which keeps them per tensor."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            for bucket in shape_buckets(group["params"]):
                for i, p in enumerate(bucket):
                    state = self.state.get(p, {})
                    if any(key.startswith("exp_avg") for key in state):
                        raise ValueError(msg("optim.adafactor_per_tensor"))
                    for name in STACKED:
                        if name in state and (i or state[name].shape[0] != len(bucket)):
                            raise ValueError(msg("optim.adafactor_stack", saved=state[name].shape[0],
                                                 count=len(bucket)))


def shape_buckets(params) -> list[list[torch.Tensor]]:
    """The group's tensors by shape, dtype and device, each bucket in the group's order."""
    buckets: dict[tuple, list] = {}
    for p in params:
        buckets.setdefault((tuple(p.shape), p.dtype, p.device), []).append(p)
    return list(buckets.values())


def rms_of_each(stack: torch.Tensor) -> torch.Tensor:
    """transformers' ``_rms`` of each tensor of a stack: its 2-norm over the square root of its size."""
    flat = stack.reshape(stack.shape[0], -1)
    return flat.norm(dim=1) / math.sqrt(flat.shape[1])


def one_or_each(values: list[float], device) -> float | torch.Tensor:
    """One number when every tensor has the same (the usual case: one step count), else one per tensor."""
    if all(v == values[0] for v in values):
        return values[0]
    return torch.tensor(values, dtype=torch.float32, device=device)


def along(value, stack: torch.Tensor):
    """A number per tensor shaped to broadcast over ``stack`` (its first dimension); a plain number as it is."""
    if not isinstance(value, torch.Tensor):
        return value
    return value.view((value.shape[0],) + (1,) * (stack.dim() - 1))


def blend(moment: torch.Tensor, value: torch.Tensor, beta) -> None:
    """``moment = beta * moment + (1 - beta) * value``, as transformers computes it."""
    if isinstance(beta, torch.Tensor):
        beta = along(beta, moment)
        moment.mul_(beta).add_(value * (1.0 - beta))
    else:
        moment.mul_(beta).add_(value, alpha=1.0 - beta)
