"""The CUDA-graph step must train like the eager one: from the same LoRA, optimizer state
and noise seed, N graph steps (warm-up, capture, replays; checkpointing keeping the attention outputs, the
memory pool reserved) must end as close to N eager steps as
two eager runs end to each other (flash-attention and cuDNN backward kernels are not
bit-reproducible, and Adam turns tiny gradient differences into full-size steps).
The text-encoder job trains both SDXL encoders too, its captions changing every step (as with
shuffled captions): the encoders run inside the graph on the token ids.
Full-size random models, CUDA only.
Usage: python benchmarks/graph_check.py [N]
"""
import copy
import sys

import torch

from benchmarks.bench import _Session
from lora_trainer.config.schema import TrainConfig
from lora_trainer.train.checkpointing import checkpoint_unet_blocks
from lora_trainer.train.setup import cache_prompts

N = int(sys.argv[1]) if len(sys.argv) > 1 else 8
JOBS = [("sd15", 1, 512, True, False), ("sdxl", 1, 512, False, False), ("sdxl", 2, 512, True, True)]
CAPTIONS = ["zkz, red hair, smiling", "zkz, blue coat, outdoors, night", "zkz", "zkz, portrait, looking at viewer"]
failed = False
for model, batch, res, gc, train_te in JOBS:
    cfg = TrainConfig(network_dim=32, network_alpha=32, mixed_precision="bf16", train_batch_size=batch,
                      gradient_checkpointing=gc, network_train_unet_only=not train_te, optimizer_type="AdamW",
                      lr_scheduler="cosine", learning_rate=1e-3, max_grad_norm=1.0, resolution=str(res))
    s = _Session(cfg, model, batch, res, 2 * N)
    if s.models.prompt_cache is not None:
        cache_prompts(s.models, s.data.captions)

    def step(i, s=s):   # this job's session (the loop deletes the name)
        if train_te:
            s.data.captions = [CAPTIONS[(i + j) % len(CAPTIONS)] for j in range(batch)]
        return s.step()
    start = (s.network.trainable_state(), copy.deepcopy(s.optimizer.state_dict()),
             copy.deepcopy(s.scheduler.state_dict()))
    runs = []
    for graphs in (False, False, True):
        s.network.load_trainable_state(start[0])
        s.optimizer.load_state_dict(copy.deepcopy(start[1]))
        s.scheduler.load_state_dict(copy.deepcopy(start[2]))
        s.generator.manual_seed(1234)
        if gc:   # as ``train`` sets it: the captured step keeps the attention outputs, the eager one is reentrant
            checkpoint_unet_blocks(s.base.unet, keep_attention=graphs, reentrant=not graphs, lora_rank=32)
        s.use_graphs(graphs)
        losses = torch.stack([step(i) for i in range(N)]).float().cpu()
        runs.append((losses, s.network.trainable_state()))
        capture_failed = s.graphed.failed if s.graphed is not None else None
        s.use_graphs(False)
    (la, wa), (le, we), (lb, wb) = runs

    def dist(x, y):
        return sum((x[k].float() - y[k].float()).pow(2).sum().item() for k in x) ** 0.5
    noise, diff, moved = dist(wa, we), dist(wa, wb), dist(wa, start[0])
    ok = diff <= 3 * noise + 1e-3 * moved and torch.allclose(la, lb, rtol=1e-3, atol=1e-5) and not capture_failed
    failed |= not ok
    print(f"{model} b{batch} {res}² GC={gc}{' +text encoders' if train_te else ''}: {'OK' if ok else 'MISMATCH'} |w_eager - w_graph| {diff:.3g}, "
          f"|w_eager - w_eager2| {noise:.3g}, |w_eager - w_start| {moved:.3g}; losses eager {la.tolist()} graph {lb.tolist()}",
          f"{'; capture failed, the step stayed eager: ' + capture_failed if capture_failed else ''}", flush=True)
    del s
    torch.cuda.empty_cache()
sys.exit(1 if failed else 0)
