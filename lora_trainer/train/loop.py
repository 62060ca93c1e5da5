"""The training loop shared by the CLI and the WebUI runner.

Linear on purpose: for each epoch, for each batch — loss, backward, and every
``gradient_accumulation_steps`` batches an optimizer step. Losses stay on the device
and are read back in groups (one host sync per group), which is also where a NaN is
caught: before any file is written from the broken weights.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Optional

import torch

from ..config.schema import TrainConfig
from ..config.steps import format_plan
from ..data.dataset import epoch_batches
from ..errors import OutputError, TrainerError, TrainingDiverged
from ..text.messages import SEMICOLON, Joined, Message, msg, sentence
from . import events as ev
from .batches import BatchMaker
from .checkpointing import checkpoint_unet_blocks
from .compile import compiles_unet
from .cpu_threads import CpuThreads, cpu_training_threads
from .distributed import any_across, gather_objects, mean_across
from .messages import nan_advice, oom_advice
from .graphs import GraphedStep, graph_blockers, host_learning_rates, update_blockers
from .saving import StateKeeper, save_checkpoint
from .setup import Run, prepare_run
from .state import RngStates, global_generators_kept, load_state, refuse_other_process_count, resume_mismatches
from .step import accumulate_gradients, after_update, apply_update, compute_loss, step_optimizer
from .step_rate import StepRate


@dataclass
class TrainResult:
    files: list[str] = field(default_factory=list)
    stopped: bool = False
    steps: int = 0
    epoch_losses: list[float] = field(default_factory=list)
    run_dir: str = ""


class _Trainer:
    def __init__(self, run: Run, listener: ev.Listener, stop: ev.StopRequest,
                 cpu: Optional[CpuThreads] = None) -> None:
        self.run = run
        self.cfg = run.cfg
        self.listener = listener
        self.stop = stop
        self.main = run.accelerator.is_main_process
        self.world, self.rank = run.accelerator.num_processes, run.accelerator.process_index
        self.global_step = 0
        self.start_epoch = 0
        self.skip_batches = 0
        self.pending: list[tuple[int, int, torch.Tensor]] = []  # (step, epoch, loss on device)
        self.epoch_losses: list[float] = []   # step losses of the current epoch
        self.all_epoch_means: list[float] = []
        self.micro_losses: list[torch.Tensor] = []  # losses of the batches accumulated into one step
        self.files: list[str] = []
        self.batches = BatchMaker(run, on_skip=lambda err: self.log_event("image_skipped", path=str(err.path),
                                                                           reason=err.reason))
        self.rate = StepRate(time.perf_counter())   # restarted at each epoch's start (a resumed run: at its step)
        self.graphed: Optional[GraphedStep] = None
        self.flush_every = 1 if run.device.type == "cpu" else 10
        from .metrics import MetricsLogger
        run_name = f"{self.cfg.output_name}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(run.started_at))}"
        self.run_dir = os.path.join(self.cfg.effective_logging_dir, run_name)
        self.metrics = MetricsLogger(self.run_dir) if self.main else None
        self.states = StateKeeper(self.cfg.save_last_n_epochs_state)
        if self.main:   # what a killed save left behind (half-written files and state folders) goes now
            from ..io.atomic import cleanup_stale_temps

            cleanup_stale_temps(self.cfg.output_dir)
            with contextlib.suppress(OSError):   # states are saved in the run folders
                for entry in os.scandir(self.cfg.effective_logging_dir):
                    if entry.is_dir() and not entry.name.startswith("."):
                        cleanup_stale_temps(entry.path)
        self.cpu = cpu   # the compute threads of a run on the CPU, timed per batch
        if cpu is not None and self.metrics is not None:
            metrics = self.metrics
            cpu.on_choice = lambda threads, ms: metrics.log_event("cpu_threads", threads=threads, ms_per_batch=ms)

    def emit(self, event) -> None:
        if self.main and self.listener is not None:
            with global_generators_kept(self.run.device):   # a WebUI preview reseeds them
                self.listener(event)

    def log_event(self, kind: str, **values) -> None:
        """A line in the run's log; a log that cannot be written (a full disk) never hides what happened."""
        if self.metrics:
            try:
                self.metrics.log_event(kind, **values)
            except OSError:
                pass

    def fail(self, err: BaseException) -> None:
        self.log_event("failed", error=str(err))
        self.emit(ev.Failed(err, list(self.files)))

    # --- resume ------------------------------------------------------------------------------
    def resume(self, state_dir: str) -> None:
        state = load_state(state_dir)
        refuse_other_process_count(state_dir, state.num_processes, self.world)
        mismatches = resume_mismatches(state.config, self.cfg.to_dict())
        if mismatches:
            raise TrainerError(msg("train.resume_settings", folder=state_dir, changes="; ".join(mismatches)),
                               msg("train.resume_settings.advice"))
        try:
            self.run.network.load_trainable_state(state.lora)
        except KeyError as err:
            raise TrainerError(msg("train.resume_network", folder=state_dir, error=err),
                               msg("train.resume_network.advice")) from None
        try:
            self.run.optimizer.load_state_dict(state.optimizer)
        except (ValueError, KeyError) as err:   # another layout of the optimizer's tensors
            detail = err.args[0] if err.args and isinstance(err.args[0], Message) else err   # ours: keyed
            raise TrainerError(msg("train.resume_optimizer", folder=state_dir, error=detail),
                               msg("train.resume_optimizer.advice")) from None
        host_learning_rates(self.run.optimizer)  # a captured run saves device-side learning rates
        self.run.scheduler.load_state_dict(state.scheduler)
        rng = state.rank_rngs[self.rank] if self.world > 1 else state.rng   # each process its own
        rng.restore(self.run.caption_rng, self.run.noise_generator)
        self.global_step, self.start_epoch, self.skip_batches = state.step, state.epoch, state.batch_in_epoch

    # --- losses: read back in groups -------------------------------------------------------------
    def flush(self) -> None:
        if not self.pending:
            return
        # the losses of every process's batches: the same curve as one process training them all
        values = mean_across(self.run.accelerator, torch.stack([loss for _, _, loss in self.pending])).float().tolist()
        it_per_s = self.rate.update(time.perf_counter(), self.global_step, self.graph_seconds())
        cuda = self.run.device.type == "cuda"
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
        reserved = torch.cuda.max_memory_reserved() / 2**30 if cuda else None
        lrs = self.current_lrs()
        for (step, epoch, _), value in zip(self.pending, values):
            if value != value or value in (float("inf"), float("-inf")):
                self.pending = []
                files = ", ".join(os.path.basename(f) for f in self.files) or msg("train.none_yet")
                raise TrainingDiverged(msg("train.nan", value=value, step=step, epoch=epoch, files=files),
                                       nan_advice(self.cfg, self.run.base.family))
            self.epoch_losses.append(value)
            if self.metrics:
                self.metrics.log_step(step, epoch, value, lrs, it_per_s=it_per_s, peak_mem_gb=peak,
                                      peak_reserved_gb=reserved)
            self.emit(ev.StepEnd(step, self.run.plan.total_steps, epoch, value, lrs, it_per_s, peak))
        self.pending = []

    def graph_seconds(self) -> float:
        return self.graphed.schedule.one_time_seconds if self.graphed is not None else 0.0

    def current_lrs(self) -> dict[str, float]:
        from .optimizers import describe_lr
        values = describe_lr(self.run.optimizer)
        names = [g.get("name", f"group{i}") for i, g in enumerate(self.run.optimizer.param_groups)]
        return dict(zip(names, values))

    # --- saving -------------------------------------------------------------------------------
    def save(self, kind: str, epoch: int, batch_in_epoch: int = 0) -> None:
        rank_rngs = None
        if self.world > 1:   # the main process writes the state, with every process's random states
            rank_rngs = gather_objects(self.run.accelerator, RngStates.capture(
                self.run.caption_rng, self.run.noise_generator, all_devices=False))
        self.run.accelerator.wait_for_everyone()
        if not self.main:
            return
        written: list[str] = []
        try:
            path, state_dir = save_checkpoint(self.run, kind=kind, epoch=epoch, step=self.global_step,
                                              state_root=self.run_dir, batch_in_epoch=batch_in_epoch,
                                              on_lora_saved=written.append, rank_rngs=rank_rngs)
        except OutputError:
            if written:   # the LoRA file is on disk, its state is not: the file is reported all the same
                self.record_file(written[0], epoch, kind, None)
            raise
        self.record_file(path, epoch, kind, state_dir)
        self.emit(ev.SampleWanted(path, epoch, self.global_step))

    def record_file(self, path: str, epoch: int, kind: str, state_dir: Optional[str]) -> None:
        removed = self.states.added(self.global_step, state_dir) if state_dir else []
        self.files.append(path)
        self.log_event("file_saved", path=path, epoch=epoch, step=self.global_step, file_kind=kind,
                       state_dir=state_dir)
        self.emit(ev.FileSaved(path, epoch, self.global_step, state_dir, kind, removed))

    # --- the loop ------------------------------------------------------------------------------
    def train(self) -> TrainResult:
        run, cfg = self.run, self.cfg
        plan = run.plan
        accum = cfg.gradient_accumulation_steps
        params = run.network.optimizer_parameters()
        graphed = self.graphed = self.graphed_step(params)
        # accumulated half-precision gradients are summed in fp32 (one process: DDP reduces the compute copies')
        fp32_sums = accum > 1 and self.world == 1 and bool(run.network.masters)
        self.setup_memory()
        self.setup_times()
        self.emit(ev.Started(plan.total_steps, plan.epochs, plan.steps_per_epoch, format_plan(plan),
                             list(run.warnings), self.global_step, self.run_dir))
        world, rank = self.world, self.rank
        model = run.step_models.unet
        for epoch_index in range(self.start_epoch, plan.epochs):
            epoch = epoch_index + 1
            self.rate.restart(time.perf_counter(), self.global_step, self.graph_seconds())   # not the epoch's end
            self.epoch_losses = []
            batches = epoch_batches(run.items, cfg.train_batch_size, cfg.seed, epoch_index)
            if world > 1:  # every process needs the same number of batches, or DDP waits forever
                batches = batches[: len(batches) - len(batches) % world][rank::world]
            skip, self.skip_batches = self.skip_batches, 0
            for index, items in enumerate(batches):
                if index < skip:
                    continue
                if self.global_step >= plan.total_steps:
                    break
                update = (index + 1) % accum == 0 or index == len(batches) - 1
                if index % accum == 0 and self.stop_agreed(index // accum):
                    self.flush()
                    self.save("interrupted", epoch_index, batch_in_epoch=index)
                    return self.finish(stopped=True)
                if self.cpu is not None:
                    self.cpu.batch_started()
                batch = self.batches.make(items)
                if batch is None:
                    continue
                if graphed is not None:  # replayed; with the update when it is captured or due
                    loss = graphed.step(batch, run.noise_generator, update=update)
                elif fp32_sums:   # each batch's gradients summed in the fp32 buffers, as the graph step does
                    loss = compute_loss(run.step_models, batch, run.noise_generator)
                    accumulate_gradients(run.accelerator, run.network, loss, accum)
                    if update:
                        step_optimizer(run.accelerator, run.optimizer, run.network, params, cfg.max_grad_norm)
                else:
                    sync = update or world == 1
                    with (run.accelerator.no_sync(model) if not sync else contextlib.nullcontext()):
                        loss = compute_loss(run.step_models, batch, run.noise_generator)
                        run.accelerator.backward(loss / accum)
                self.micro_losses.append(loss.detach())
                if update:
                    if graphed is not None or fp32_sums:
                        after_update(run.scheduler, run.network, cfg.scale_weight_norms)
                    else:
                        apply_update(run.accelerator, run.optimizer, run.scheduler, run.network, params,
                                     cfg.max_grad_norm, cfg.scale_weight_norms)
                    self.global_step += 1
                    step_loss = self.micro_losses[0] if len(self.micro_losses) == 1 else \
                        torch.stack(self.micro_losses).mean()
                    self.micro_losses = []
                    self.pending.append((self.global_step, epoch, step_loss))
                    if len(self.pending) >= self.flush_every:
                        self.flush()
                if self.cpu is not None:
                    self.cpu.batch_done()
            self.flush()
            mean = sum(self.epoch_losses) / len(self.epoch_losses) if self.epoch_losses else float("nan")
            self.all_epoch_means.append(mean)
            if self.metrics:
                self.metrics.log_epoch(epoch, mean, self.global_step)
            self.emit(ev.EpochEnd(epoch, self.global_step, mean))
            last = epoch == plan.epochs or self.global_step >= plan.total_steps
            if cfg.save_every_n_epochs and epoch % cfg.save_every_n_epochs == 0:
                self.save("epoch", epoch)
            if run.validation is not None and run.validation.due(epoch, last):
                self.validate(epoch)
            if last:
                break
        self.save("final", min(plan.epochs, self.start_epoch + len(self.all_epoch_means)))
        if graphed is not None and self.metrics:
            self.metrics.log_event("cuda_graph_shapes", **graphed.schedule.summary())
            if graphed.failed:
                self.metrics.log_event("cuda_graphs_failed", error=graphed.failed)
        return self.finish(stopped=False)

    def stop_agreed(self, step_in_epoch: int) -> bool:
        """Whether to stop before this step. Several processes decide together, every ``flush_every`` steps
        (the losses' host sync), so that all of them save and stop at the same batch."""
        if self.world == 1:
            return self.stop.requested
        if step_in_epoch % self.flush_every:
            return False
        return any_across(self.run.accelerator, self.stop.requested)

    def setup_memory(self) -> None:
        """Log the setup's peak GPU memory (loading, latent and prompt caching), then restart the
        peak counters so that the steps' figures are the training step's own."""
        if self.run.device.type != "cuda":
            return
        if self.metrics:
            self.metrics.log_event("setup_memory", peak_mem_gb=torch.cuda.max_memory_allocated() / 2**30,
                                   peak_reserved_gb=torch.cuda.max_memory_reserved() / 2**30)
        torch.cuda.reset_peak_memory_stats(self.run.device)

    def setup_times(self) -> None:
        """Log the seconds of each setup phase (``prepare_run``'s, then ``trainer``: the loop's own
        preparations) and their total, up to the first step."""
        clock = self.run.clock
        if clock is None:
            return
        clock.lap("trainer")
        if self.metrics:
            self.metrics.log_event("setup_times", **clock.summary())

    def validate(self, epoch: int) -> None:
        """Score the held-out (or fixed training) images with the network as it is after ``epoch``."""
        validation = self.run.validation
        loss = validation.compute(self.run)
        if self.metrics:
            self.metrics.log_validation(epoch, self.global_step, loss, source=validation.source,
                                        images=len(validation.vset.items))
        self.emit(ev.Validated(epoch, self.global_step, loss, validation.source, len(validation.vset.items)))

    def graphed_step(self, params) -> Optional[GraphedStep]:
        """The CUDA-graph step when ``cuda_graphs`` is on and nothing blocks it (else None, with
        a warning saying why on a CUDA device). The optimizer update joins the graph when it can."""
        run, cfg = self.run, self.cfg
        if not cfg.cuda_graphs or run.device.type != "cuda":
            return None
        blockers = graph_blockers(cfg, run.accelerator, run.optimizer)
        if blockers:
            run.warnings.append(sentence("train.graphs_off", reasons=Joined(blockers, SEMICOLON)))
            return None
        if cfg.gradient_checkpointing:   # non-reentrant (the eager step's is not); no dropout: graph_blockers
            checkpoint_unet_blocks(run.base.unet, keep_attention=cfg.train_unet,
                                   lora_rank=cfg.network_dim if cfg.train_unet else None,
                                   wrap_blocks=not compiles_unet(cfg, run.device))
        eager = update_blockers(cfg, run.optimizer)
        if self.metrics:
            self.metrics.log_event("cuda_graphs", update="eager" if eager else "captured",
                                   why=[str(reason) for reason in eager])
        return GraphedStep(run.step_models, run.accelerator, run.optimizer, run.network, params,
                           cfg.max_grad_norm, capture_update=not eager,
                           accumulation=cfg.gradient_accumulation_steps,
                           shape_warmup=1 if cfg.torch_compile and cfg.train_unet else 0)  # compile, then capture

    def finish(self, stopped: bool) -> TrainResult:
        if self.metrics:
            self.metrics.log_event("finished", stopped=stopped, steps=self.global_step)
            self.metrics.close()
        final = self.all_epoch_means[-1] if self.all_epoch_means else None
        self.emit(ev.Finished(list(self.files), stopped, final))
        return TrainResult(files=list(self.files), stopped=stopped, steps=self.global_step,
                           epoch_losses=list(self.all_epoch_means), run_dir=self.run_dir)


def _notify(listener, event) -> None:
    if listener is not None:
        listener(event)


def train(cfg: TrainConfig, *, listener: ev.Listener | None = None, stop: ev.StopRequest | None = None,
          log=print) -> TrainResult:
    """Train a LoRA as ``cfg`` says. Raises ``TrainerError`` (with advice) on bad input or failure;
    every failure is also reported to ``listener`` as a ``Failed`` event.

    On the CPU the calling thread's compute threads are chosen for the run (``cpu_threads.py``) and given
    back when it ends."""
    with cpu_training_threads(on_cpu=not torch.cuda.is_available()) as cpu:
        return _train(cfg, listener, stop, log, cpu)


def _train(cfg: TrainConfig, listener, stop, log, cpu: Optional[CpuThreads]) -> TrainResult:
    try:
        run = prepare_run(cfg, log=log)
    except torch.cuda.OutOfMemoryError:
        err = TrainerError(msg("train.oom.preparing"), oom_advice(cfg))
        _notify(listener, ev.Failed(err, []))
        raise err from None
    except Exception as err:
        _notify(listener, ev.Failed(err, []))
        raise
    try:
        trainer = _Trainer(run, listener, stop or ev.StopRequest(), cpu)
    except OSError as os_err:   # the log folder
        err = _write_failure(os_err, cfg)
        _notify(listener, ev.Failed(err, []))
        raise err from None
    try:
        if cfg.resume:
            trainer.resume(cfg.resume)
        return trainer.train()
    except torch.cuda.OutOfMemoryError:
        err = TrainerError(msg("train.oom.training"), oom_advice(cfg))
        trainer.fail(err)
        raise err from None
    except OSError as os_err:   # the logs (the LoRA files and states fail as OutputError)
        err = _write_failure(os_err, cfg)
        trainer.fail(err)
        raise err from None
    except Exception as err:
        trainer.fail(err)
        raise
    finally:
        if trainer.metrics:
            try:
                trainer.metrics.close()
            except OSError:
                pass


def _write_failure(err: OSError, cfg: TrainConfig) -> TrainerError:
    from ..io.disk import write_error

    path = err.filename if isinstance(err.filename, str) else cfg.effective_logging_dir
    return write_error(err, path, 0) or TrainerError(msg("train.write_failed", folder=cfg.output_dir, reason=err))
