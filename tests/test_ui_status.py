"""What the tab shows, without gradio: progress, errors, files, the loss chart, the step maths, the
checks before a run is queued."""
import re
import shutil
import time
from pathlib import Path

from lora_trainer.config.schema import TrainConfig
from lora_trainer.runner.job import Job
from lora_trainer.ui import actions, status
from lora_trainer.evaluate.loss_chart import loss_chart_svg, nice_ticks, smooth_live
from lora_trainer.ui.dataset_view import dataset_summary
from lora_trainer.ui.status import (duration, error_html, files_html, job_choices, job_id_of, log_html, preview_items,
                                    progress_html, queue_html, view_stamp)

DEMO = Path(__file__).resolve().parents[1] / "lora_trainer" / "demo_data" / "train"


def training_job(**changes) -> Job:
    job = Job(id="20250101-000000-abcdef", output_name="ningguang", status="training", created_at=time.time() - 60,
              started_at=time.time() - 50, step=30, total_steps=120, epoch=2, epochs=4, it_per_s=2.5, eta_s=36,
              lr={"unet": 1e-4, "text_encoder": 5e-5}, vram_gb=6.2,
              losses=[[s, 0.2 - s / 1000] for s in range(1, 31)], epoch_losses=[[1, 30, 0.19]])
    for key, value in changes.items():
        setattr(job, key, value)
    return job


def test_progress_shows_every_number_a_user_watches():
    text = re.sub(r"<[^>]+>", " ", progress_html(training_job()))
    for expected in ("Training", "ningguang", "2 / 4", "30 / 120", "2.50 it/s", "0:36", "0.1700", "0.1900",
                     "1.0e-4 / 5.0e-5", "6.2 GB"):
        assert expected in text, expected
    assert "width:25.0%" in progress_html(training_job())
    assert "No training yet" in progress_html(None)
    assert duration(3725) == "1:02:05" and duration(None) == "–"


def test_failure_shows_the_cores_message_and_advice():
    job = training_job(status="failed", error={"message": "CUDA out of memory at step 3",
                                               "advice": "lower train_batch_size (now 4); or pick the 8 GB preset"})
    html = error_html(job)
    assert "Training failed" in html and "out of memory" in html and "What to do" in html and "8 GB preset" in html
    assert error_html(training_job()) == ""


def test_files_queue_picker_and_previews(tmp_path):
    lora = tmp_path / "ningguang-000001.safetensors"
    lora.write_bytes(b"0" * 2048)
    image, second = tmp_path / "p.png", tmp_path / "q.png"
    image.write_bytes(b"png")
    second.write_bytes(b"png")
    job = training_job(files=[{"path": str(lora), "epoch": 1, "step": 30, "kind": "epoch"}],
                       previews=[{"epoch": 2, "weight": 1.0, "prompt": "b", "path": str(second)},
                                 {"epoch": 1, "weight": 1.0, "prompt": "a", "path": str(image)},
                                 {"epoch": 1, "weight": 1.0, "prompt": "gone", "path": str(tmp_path / "x.png")},
                                 {"epoch": 2, "weight": 1.0, "prompt": "b", "path": str(second), "file": "final"}])
    assert "ningguang-000001.safetensors" in files_html(job) and str(tmp_path) in files_html(job)
    assert "2 KB" in files_html(job) and "gone" not in files_html(job)
    lora.unlink()   # the record outlives its files: it says so
    assert "The files of this run are gone" in files_html(job) and ">gone<" in files_html(job)
    lora.write_bytes(b"0" * 2048)
    assert [caption for _, caption in preview_items(job)] == ["epoch 1 · ×1 · a", "epoch 2 · ×1 · b"]
    queued = training_job(id="2", status="queued", output_name="next")
    assert "Waiting in the queue" in queue_html([queued, job]) and "The queue is empty" in queue_html([])
    assert job_choices([queued]) == ["next · Waiting in the queue · 2"] and job_id_of(job_choices([job])[0]) == job.id
    assert view_stamp(job, [job]) != view_stamp(training_job(step=31), [job])
    try:
        status.use_language(lambda: "zh_CN")
        captions = [caption for _, caption in preview_items(job)]
        chosen = job_choices([queued])
    finally:
        status.use_language(lambda: "en")
    assert captions == ["第 1 轮 · ×1 · a", "第 2 轮 · ×1 · b"]
    assert chosen == ["next · 排队等待中 · 2"] and job_id_of(chosen[0]) == "2"


def test_the_run_log_is_shown_in_the_tabs_language_newest_at_the_bottom_and_redrawn_per_line():
    from lora_trainer.runner.job import MAX_LOG_LINES
    from lora_trainer.text.messages import sentence

    job = training_job(log=[sentence("job.previews_nan", name="ningguang-000001.safetensors"), "<b>step</b> maths"])
    html = log_html(job)
    assert "Run log" in html and "No previews of ningguang-000001.safetensors" in html
    assert "&lt;b&gt;step&lt;/b&gt;" in html and "<b>" not in html
    # in the page's order the newest line is last (the box stacks them from its bottom: column-reverse)
    assert html.index("&lt;b&gt;step") < html.index("No previews of")
    try:
        status.use_language(lambda: "zh_CN")
        assert "没有预览图" in log_html(job)
    finally:
        status.use_language(lambda: "en")
    assert log_html(training_job()) == ""
    stamp = view_stamp(job, [job])
    job.log.append("Epoch 2: mean loss 0.1900 (step 60).")
    assert view_stamp(job, [job]) != stamp
    full = training_job(log=[f"line {i}" for i in range(MAX_LOG_LINES)])
    stamp = view_stamp(full, [full])
    full.add_log("one more")   # the cap keeps the length: the last line still changes the stamp
    assert len(full.log) == MAX_LOG_LINES and view_stamp(full, [full]) != stamp


def test_loss_chart_marks_each_epoch_and_smooths_without_a_start_bias():
    assert loss_chart_svg([]) == ""
    svg = loss_chart_svg([[s, 1.0 + (s % 3) * 0.1] for s in range(1, 61)],
                         epochs=[[1, 20, 1.1], [2, 40, 1.1], [3, 60, 1.1]])
    assert svg.count('class="lt-epoch"') == 3 and svg.count('class="lt-mean"') == 3
    assert 'class="lt-raw"' in svg and 'class="lt-smooth"' in svg
    assert smooth_live([2.0, 2.0, 2.0]) == [2.0, 2.0, 2.0]
    ticks = nice_ticks(0.13, 0.31)
    assert ticks[0] <= 0.13 and ticks[-1] >= 0.31 and len(ticks) <= 7
    one = loss_chart_svg([[1, 0.5]])   # the first step: a dot, and whole step numbers on the axis
    assert 'class="lt-now"' in one and ">0.2<" not in one
    assert re.findall(r'text-anchor="middle">(\d+)<', one) == ["0", "1"]
    big = loss_chart_svg([[s, float("nan") if s == 5 else 0.1] for s in range(5000)])
    assert big.count(",") < 1500   # thinned to at most a few hundred points per line


def test_step_maths_and_dataset_summary_come_from_the_core():
    full, line = dataset_summary(TrainConfig(train_data_dir=str(DEMO), resolution="64", min_bucket_reso=64,
                                             max_bucket_reso=128, train_batch_size=2, max_train_epochs=3))
    assert "8 images × 8 repeats × 3 epochs ÷ batch 2 = 96 steps" in line
    assert "8_zkz shapes" in full and "Step maths" in full
    assert full.count("96 steps") == 1 and full.count("Step maths") == 1   # shown once in the Dataset tab
    full, line = dataset_summary(TrainConfig(train_data_dir="/nowhere/at/all"))
    assert "does not exist" in full and full == line
    empty, line = dataset_summary(TrainConfig())
    assert "Choose the training images folder" in empty
    assert "Dataset tab" not in empty and "in the Dataset tab" in line   # the hint is read on that tab


class FakeRunner:
    def __init__(self, jobs=()):
        self._jobs = list(jobs)

    def jobs(self):
        return list(self._jobs)

    def current(self):
        return next((j for j in self._jobs if j.status in ("preparing", "training", "stopping")), None)

    def get(self, job_id):
        return next((j for j in self._jobs if j.id == job_id), None)


def test_check_before_queuing_asks_before_replacing_files(tmp_path):
    data = tmp_path / "train"
    shutil.copytree(DEMO, data)
    base = tmp_path / "base.safetensors"
    base.write_bytes(b"x")
    cfg = TrainConfig(pretrained_model_name_or_path=str(base), train_data_dir=str(data), output_dir=str(tmp_path),
                      output_name="zkz/v1", resolution="64", min_bucket_reso=64, max_bucket_reso=128)
    check = actions.check_start(cfg, FakeRunner(), confirmed=False)
    assert check.ready and check.cfg.output_name == "zkz_v1" and check.plan.total_steps == 640
    assert any("folders" in w for w in check.warnings)
    (tmp_path / "zkz_v1-000002.safetensors").write_bytes(b"")
    check = actions.check_start(cfg, FakeRunner(), confirmed=False)
    assert check.confirm_needed and not check.ready and "zkz_v1-000002.safetensors" in check.message
    assert actions.check_start(cfg, FakeRunner(), confirmed=True).ready
    busy = training_job(output_name="zkz_v1", output_dir=str(tmp_path))
    check = actions.check_start(cfg, FakeRunner([busy]), confirmed=True)
    assert not check.ready and "already writes" in check.message
    bad = actions.check_start(cfg.replace(train_batch_size=0, train_data_dir=""), FakeRunner(), confirmed=True)
    assert not bad.ready and "Batch size (train_batch_size)" in bad.message


def test_the_page_shows_the_run_training_now_else_the_latest():
    old = training_job(id="old", status="finished", started_at=10.0)
    new = training_job(id="new", status="failed", started_at=20.0)
    waiting = training_job(id="wait", status="queued", started_at=None)
    assert actions.view_job(FakeRunner([waiting, new, old])).id == "new"
    running = training_job(id="run")
    assert actions.view_job(FakeRunner([waiting, running, new])).id == "run"
    assert actions.view_job(FakeRunner([waiting, running]), "wait").id == "wait"
    assert actions.view_job(FakeRunner([])) is None


def test_open_pages_share_one_read_of_the_jobs_per_second():
    class Counting(FakeRunner):
        reads = 0

        def jobs(self):
            Counting.reads += 1
            return super().jobs()

    runner = Counting([training_job(id="run")])
    snapshot = actions.JobsSnapshot(runner, ttl=60)
    for _ in range(5):   # five pages polling
        assert snapshot.current().id == "run" and snapshot.get("run") is not None
    assert Counting.reads == 1
    snapshot.forget()
    snapshot.jobs()
    assert Counting.reads == 2


def test_start_shows_the_dataset_checks(tmp_path):
    data = tmp_path / "train"
    shutil.copytree(DEMO, data)
    concept = next(data.iterdir())
    first = sorted(concept.glob("*.png"))[0]
    shutil.copy(first, concept / "again.png")     # a duplicate
    (data / "misnamed").mkdir()                   # a folder without the repeats prefix
    base = tmp_path / "base.safetensors"
    base.write_bytes(b"x")
    cfg = TrainConfig(pretrained_model_name_or_path=str(base), train_data_dir=str(data), output_dir=str(tmp_path),
                      resolution="64", min_bucket_reso=64, max_bucket_reso=128)
    check = actions.check_start(cfg, FakeRunner(), confirmed=True)
    assert check.ready
    assert any("duplicates" in w for w in check.warnings) and any("misnamed" in w for w in check.warnings)
