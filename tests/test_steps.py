"""Step maths shown before training (no torch)."""
from lora_trainer.config.steps import ConceptRow, format_plan, plan_steps


def test_plain_maths_with_accumulation():
    rows = [ConceptRow("10_char", 20, 10, False), ConceptRow("5_outfit", 8, 5, False)]
    plan = plan_steps(rows, batch_size=2, gradient_accumulation_steps=2, max_train_epochs=10,
                      max_train_steps=None)
    assert plan.train_samples == 240 and plan.batches_per_epoch == 120 and plan.steps_per_epoch == 60
    assert plan.total_steps == 600 and plan.epochs == 10
    text = format_plan(plan)
    assert "10_char" in text and "20 ×      10 =     200" in text
    assert "240 samples ÷ batch 2 = 120 batches per epoch" in text
    assert "120 ÷ accumulation 2 = 60 steps per epoch" in text
    assert "60 steps per epoch × 10 epochs = 600 steps" in text


def test_regularization_doubles_samples():
    rows = [ConceptRow("10_char", 20, 10, False), ConceptRow("1_woman", 50, 1, True)]
    plan = plan_steps(rows, batch_size=4, gradient_accumulation_steps=1, max_train_epochs=2, max_train_steps=None)
    assert plan.reg_samples == 200 and plan.samples_per_epoch == 400
    assert plan.total_steps == 200
    assert "200 train + 200 regularization = 400 samples per epoch" in format_plan(plan)


def test_steps_limit_and_bucket_note():
    rows = [ConceptRow("3_x", 10, 3, False)]
    plan = plan_steps(rows, batch_size=4, gradient_accumulation_steps=1, batches_per_epoch=10,
                      max_train_epochs=None, max_train_steps=25)
    assert plan.epochs == 3 and plan.total_steps == 25
    text = format_plan(plan)
    assert "buckets add 2 partly filled batch(es)" in text
    assert "25 steps (max_train_steps)" in text


def test_several_processes_share_the_batches():
    rows = [ConceptRow("8_x", 8, 8, False)]
    plan = plan_steps(rows, batch_size=2, gradient_accumulation_steps=2, batches_per_epoch=16,
                      max_train_epochs=2, max_train_steps=None, num_processes=2)
    assert plan.steps_per_epoch == 8 and plan.total_steps == 16
    assert "64 samples ÷ batch 2 ÷ 2 processes = 16 batches per epoch on each process" in format_plan(plan)


def test_regularization_surplus_and_shortfall_are_explained():
    few = plan_steps([ConceptRow("5_a", 2, 5, False), ConceptRow("1_p", 3, 1, True)], batch_size=4,
                     gradient_accumulation_steps=1, max_train_epochs=1, max_train_steps=None)
    assert few.reg_samples == 10 and "they are repeated to 10 samples per epoch" in format_plan(few)
    many = plan_steps([ConceptRow("1_a", 2, 1, False), ConceptRow("1_p", 30, 1, True)], batch_size=4,
                      gradient_accumulation_steps=1, max_train_epochs=1, max_train_steps=None)
    assert "only the first 2 are used each epoch" in format_plan(many)


def test_scan_and_plan_from_a_config_without_torch(tmp_path, make_image):
    from lora_trainer.config.schema import TrainConfig
    from lora_trainer.config.steps import scan_and_plan

    for i in range(3):
        make_image(tmp_path / "train" / "10_角色 a" / f"{i}.png", size=(512, 512))
    cfg = TrainConfig(train_data_dir=str(tmp_path / "train"), train_batch_size=2, max_train_epochs=4)
    scan, items, plan = scan_and_plan(cfg)
    assert len(items) == 3 and plan.samples_per_epoch == 30 and plan.total_steps == 60
    assert "10_角色 a" in format_plan(plan)


def test_what_does_not_fit_the_settings_is_said_before_training(tmp_path, make_image):
    from lora_trainer.config.schema import TrainConfig
    from lora_trainer.config.steps import scan_and_plan

    concept = tmp_path / "train" / "1_zkz"
    for name, size, caption in (("tiny.png", (8, 8), "zkz"), ("big.png", (64, 64), "zkz, red, circle")):
        make_image(concept / name, size=size)
        (concept / name).with_suffix(".txt").write_text(caption, encoding="utf-8")
    cfg = TrainConfig(train_data_dir=str(tmp_path / "train"), resolution="64", min_bucket_reso=64, max_bucket_reso=128,
                      max_train_epochs=2, shuffle_caption=True, keep_tokens=2, lr_warmup_steps=500)
    scan, items, plan = scan_and_plan(cfg)
    assert "1 image(s) are enlarged more than 2× to their training size and train blurred: tiny.png (8×8 → 64×64). " \
           "Use larger images, or a smaller resolution" in scan.warnings
    assert "keep_tokens is 2, but 1 caption(s) have fewer tags, so none of their tags is ever shuffled or dropped: " \
           "tiny.png (1 tag(s)). Lower keep_tokens (the trigger word is usually 1) or add tags to those captions" \
           in scan.warnings
    assert plan.total_steps == 4 and "lr_warmup_steps (500) is not shorter than the whole run (4 steps): the " \
           "learning rate never reaches its value; use fewer warm-up steps or a fraction such as 0.05 (5% of the " \
           "steps)" in plan.notes
    # tags that neither move nor drop out: keep_tokens changes nothing, nothing is said
    assert not any("keep_tokens" in w for w in scan_and_plan(cfg.replace(shuffle_caption=False))[0].warnings)
    assert not any("lr_warmup_steps" in n for n in scan_and_plan(cfg.replace(lr_warmup_steps=0.5))[2].notes)
