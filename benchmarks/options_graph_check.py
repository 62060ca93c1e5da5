"""The CUDA-graph step must train like the eager one with the caption-length, mask, augmentation and noise
options on (``options``), and with the optimizer update outside the graph (``updates``: 8-bit, Lion, Prodigy
and Adafactor optimizers, fp16's loss scaler, gradient accumulation): whole ``train`` runs on tiny models over
two bucket shapes (128 x 128 and 192 x 64; both must be captured: `cuda_graph_shapes` says how many without a warm-up step),
from the same seed, twice eagerly (the spread of non-deterministic kernels) and once with the step captured;
the captured run must end as close to the eager one as the two eager runs end to each other, with the same
losses, and must really have replayed graphs. CUDA only.
Usage: python benchmarks/options_graph_check.py WORK_DIR [options|updates|all] [only the jobs mentioning this]
"""
import json
import shutil
import sys
from pathlib import Path

import torch
from PIL import Image

from lora_trainer.config.schema import TrainConfig
from lora_trainer.models.tiny import build_tiny_components, save_single_file
from lora_trainer.train import events as ev
from lora_trainer.train.loop import train

DEMO = Path(__file__).resolve().parents[1] / "lora_trainer" / "demo_data" / "train"
LONG = ", ".join(f"tag{n} detail" for n in range(60))
JOBS = [
    # text encoders trained: 2-chunk token ids are the graph's static inputs; masks, flips, noise options
    ("sd1", dict(max_token_length=150, flip_aug=True, alpha_mask=True, multires_noise_iterations=6,
                 ip_noise_gamma=0.1, debiased_estimation_loss=True)),
    # v-prediction, zero terminal SNR with min-SNR, a mask folder, pixels cropped and recoloured each step
    ("sd2", dict(zero_terminal_snr=True, min_snr_gamma=5.0, masked_loss=True, random_crop=True, color_aug=True,
                 network_train_unet_only=True)),
    # 3-chunk cached prompts of both encoders, flipped latents from the disk cache
    ("sdxl", dict(max_token_length=225, flip_aug=True, cache_latents_to_disk=True, alpha_mask=True,
                  network_train_unet_only=True, ip_noise_gamma=0.05)),
]

# the update after the replayed forward and backward pass; the text encoder is trained unless said otherwise
UPDATE_JOBS = [
    ("sd1", dict(optimizer_type="AdamW8bit")),
    ("sd1", dict(optimizer_type="Lion8bit", learning_rate=3e-4, gradient_accumulation_steps=2)),
    ("sd1", dict(optimizer_type="Prodigy", learning_rate=1.0)),
    ("sd1", dict(optimizer_type="Adafactor", optimizer_args=["scale_parameter=False", "relative_step=False",
                                                             "warmup_init=False"])),
    ("sd1", dict(mixed_precision="fp16")),
    ("sd1", dict(mixed_precision="bf16", gradient_accumulation_steps=2)),
    ("sdxl", dict(optimizer_type="AdamW8bit", mixed_precision="bf16", gradient_checkpointing=True,
                  network_train_unet_only=True, gradient_accumulation_steps=2)),
]


def dataset(root: Path) -> Path:
    folder, masks = root / "data" / "4_zkz", root / "masks" / "4_zkz"
    folder.mkdir(parents=True)
    masks.mkdir(parents=True)
    for index, image in enumerate(sorted(next(DEMO.iterdir()).glob("*.png"))):
        rgba = Image.open(image).convert("RGBA")
        alpha = Image.new("L", rgba.size, 0)
        alpha.paste(255, (8, 8, 56, 56))
        rgba.putalpha(alpha)
        if index % 2:   # 3:1, its own bucket (192 x 64) beside the square ones (128 x 128)
            wide = Image.new("RGBA", (192, 64), (255, 255, 255, 0))
            wide.paste(rgba, (64, 0))
            rgba, alpha = wide, wide.getchannel("A")
        rgba.save(folder / image.name)
        Image.merge("RGB", (alpha, alpha, alpha)).save(masks / image.name)
        shutil.copy(image.with_suffix(".txt"), folder / image.with_suffix(".txt").name)
    (folder / "01 center.txt").write_text("zkz, " + LONG, encoding="utf-8")
    return root


def one_run(checkpoint, root: Path, name: str, graphs: bool, options: dict):
    from safetensors.torch import load_file

    options = dict(options)
    if options.get("masked_loss"):
        options["conditioning_data_dir"] = str(root / "masks")
    settings = dict(pretrained_model_name_or_path=str(checkpoint), train_data_dir=str(root / "data"),
                    output_dir=str(root / name), output_name="check", resolution="128", min_bucket_reso=64,
                    max_bucket_reso=256, bucket_reso_steps=64, train_batch_size=4, max_train_epochs=3, save_every_n_epochs=None,
                    save_state=False, network_dim=4, network_alpha=4, learning_rate=3e-3, mixed_precision="no",
                    optimizer_type="AdamW", seed=7, save_precision="float", cuda_graphs=graphs)
    cfg = TrainConfig(**{**settings, **options})
    seen = []
    result = train(cfg, listener=seen.append, log=lambda *_: None)
    started = next(e for e in seen if isinstance(e, ev.Started))
    steps = [e.loss for e in seen if isinstance(e, ev.StepEnd)]
    events = [json.loads(line) for line in open(Path(result.run_dir) / "metrics.jsonl", encoding="utf-8")]
    failed = [e for e in events if e.get("type") == "event" and e.get("kind") == "cuda_graphs_failed"]
    if graphs and not any(e.get("kind") == "cuda_graphs" for e in events if e.get("type") == "event"):
        failed.append("no cuda_graphs event: the step was not graphed")
    shapes = next((e for e in events if e.get("kind") == "cuda_graph_shapes"), {})
    if graphs and shapes.get("captured", 0) < 2:   # the data set has two buckets: both must replay
        failed.append(f"{shapes.get('captured', 0)} shape(s) captured, 2 expected: {shapes}")
    off = [w for w in started.warnings if "CUDA graphs are off" in w]
    return load_file(result.files[-1]), torch.tensor(steps), off, failed, shapes


def main() -> int:
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    work = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/options_graph_check")
    which = sys.argv[2] if len(sys.argv) > 2 else "options"
    jobs = (JOBS if which in ("options", "all") else []) + (UPDATE_JOBS if which in ("updates", "all") else [])
    if len(sys.argv) > 3:   # only the jobs whose options mention this, e.g. Prodigy
        jobs = [job for job in jobs if sys.argv[3] in str(job[1])]
    shutil.rmtree(work, ignore_errors=True)
    bad = False
    for number, (family, options) in enumerate(jobs):
        root = dataset(work / f"{number}-{family}")
        checkpoint = save_single_file(build_tiny_components(family, seed=0), root / "tiny.safetensors", family)
        (wa, la, *_), (we, le, *_), (wg, lg, off, failed, shapes) = [
            one_run(checkpoint, root, name, graphs, options)
            for name, graphs in (("eager1", False), ("eager2", False), ("graph", True))]

        def dist(x, y):
            return sum((x[k].float() - y[k].float()).pow(2).sum().item() for k in x) ** 0.5
        noise, diff = dist(wa, we), dist(wa, wg)
        scale = sum(t.float().pow(2).sum().item() for t in wa.values()) ** 0.5
        # half precision: two eager runs of the tiny models are bitwise equal (spread 0), while the replayed
        # graph runs other kernels; its rounding is allowed one step of the compute precision (its machine
        # epsilon: fp16 2^-10, bf16 2^-7) of the weights' norm
        half = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(options.get("mixed_precision"))
        tolerance = torch.finfo(half).eps if half is not None else 1e-4
        # each step's loss equal to the eager run's, or no further from it than ten times the two eager runs'
        # largest difference so far: Prodigy's growing step size makes a tiny model's run chaotic, and after
        # some steps even two eager runs part (their weights' spread still bounds the graph's, above)
        loss_spread = (la - le).abs().max().item()
        allowed = torch.maximum(1e-3 * la.abs() + 1e-5, 10 * torch.cummax((la - le).abs(), dim=0).values)
        losses_ok = bool(((la - lg).abs() <= allowed).all())
        ok = not off and not failed and diff <= 3 * noise + tolerance * scale and losses_ok
        bad |= not ok
        print(f"{family} {options}: {'OK' if ok else 'MISMATCH'} |w_eager - w_graph| {diff:.3g}, "
              f"|w_eager - w_eager2| {noise:.3g}, |w| {scale:.3g}, losses' eager spread {loss_spread:.3g}; losses eager {la.tolist()}, "
              f"eager2 {le.tolist()}, graph {lg.tolist()}"
              f"; shapes {shapes.get('captured')} captured, {shapes.get('without_warmup')} without warm-up"
              f"{'; graphs off: ' + str(off) if off else ''}{'; capture failed: ' + str(failed) if failed else ''}",
              flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
