"""``python -m lora_trainer dataset import|check|fold|edit|undo|reg``: the Dataset workbench from the command line."""
from __future__ import annotations

from pathlib import Path

from ..dataset.messages import duplicate_kind
from ..errors import TrainerError
from ..text.messages import msg
from . import messages_dataset  # noqa: F401  (registers the sentences)
from .messages import language, said

LEVELS = ("error", "warning", "info")


def _tags(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def _print_findings(findings) -> None:
    lang = language()
    if not findings:
        print(said("cli.no_problems"))
    for f in findings:
        level = msg(f"cli.level.{f.level}") if f.level in LEVELS else f.level
        print(said("cli.finding", level=level, text=f.text(lang), advice=f.advice.format(lang))
              + (said("cli.finding_fix", label=f.fix.label.format(lang)) if f.fix else ""))


def cmd_import(args) -> int:
    from ..dataset.importing import import_pictures, plan_import
    from ..dataset.project import Project

    project = Project.create(args.project)
    plan = plan_import(project, args.source, recursive=args.recursive)
    for picture in plan.unreadable:
        print(said("cli.dataset.unreadable", path=picture.path, why=picture.error))
    for path in plan.unsupported:
        print(said("cli.dataset.unsupported", path=path))
    for group in plan.duplicates:
        print(said("cli.dataset.duplicates", kind=duplicate_kind(group.kind),
                   names=" = ".join(Path(p).name for p in group.paths)))
    result = import_pictures(project, plan, args.trigger, args.repeats or None, args.class_word, args.goal,
                             leave_out=set() if args.keep_duplicates else None)
    concept = project.concept(args.trigger)
    print(said("cli.dataset.imported", count=len(result.imported), captions=result.captions,
               folder=project.concept_dir(concept), repeats=concept.repeats))
    for path, why in result.caption_problems:
        print(said("cli.dataset.caption_not_imported", path=path, why=why))
    return 0


def cmd_check(args) -> int:
    from ..dataset.checks import CheckSettings, check_dataset

    findings = check_dataset(args.folder, CheckSettings(resolution=args.resolution, enable_bucket=not args.no_buckets,
                                                        goal=args.goal, trigger=args.trigger or "",
                                                        token_limit=args.max_token_length))
    _print_findings(findings)
    return 1 if any(f.blocking for f in findings) else 0


def _edit(args, edit, label) -> int:
    from ..dataset.caption_edit import plan_edit, read_captions
    from ..dataset.fixes import history_for

    folder = Path(args.folder)
    concepts = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")] or [folder]
    changes = plan_edit(read_captions(concepts), edit)
    for change in changes[: args.show]:
        print(f"{Path(change.image).name}: {change.before!r} → {change.after!r}")
    if len(changes) > args.show:
        print(said("cli.dataset.more", count=len(changes) - args.show))
    if not args.apply:
        print(said("cli.dataset.would_change", count=len(changes)))
        return 0
    applied = history_for(folder).apply(changes, label)
    for path, why in applied.conflicts:
        print(said("cli.dataset.left_alone", path=path, why=why))
    print(said("cli.dataset.written", count=len(applied.written), folder=folder))
    return 0


def cmd_fold(args) -> int:
    from ..dataset.caption_edit import fold_traits

    from ..dataset.caption_edit import edit_label

    return _edit(args, fold_traits(args.trigger, _tags(args.tags)),
                 edit_label("fold", _tags(args.tags), trigger=args.trigger))


def cmd_edit(args) -> int:
    from ..dataset import caption_edit as ce

    if args.add:
        edit, label = ce.add_tags(_tags(args.add), front=args.front), ce.edit_label("add", _tags(args.add))
    elif args.remove:
        edit, label = ce.remove_tags(_tags(args.remove)), ce.edit_label("remove", _tags(args.remove))
    elif args.replace:
        old, _, new = args.replace.partition("=")
        edit, label = ce.replace_tag(old, new), ce.edit_label("replace", [old], new)
    elif args.move_to_front:
        edit, label = ce.move_to_front(_tags(args.move_to_front)), ce.edit_label("move_to_front",
                                                                                  _tags(args.move_to_front))
    else:
        raise TrainerError(msg("cli.dataset.no_edit"), msg("cli.dataset.no_edit.advice"))
    return _edit(args, edit, label)


def cmd_undo(args) -> int:
    from ..dataset.fixes import history_for

    history = history_for(args.folder)
    label = history.last_label(language())
    applied = history.undo()
    for path, why in applied.conflicts:
        print(said("cli.dataset.left_alone", path=path, why=why))
    print(said("cli.dataset.undone", label=label, count=len(applied.written)))
    return 0


def add_dataset_parser(sub) -> None:
    p = sub.add_parser("dataset", help="prepare a dataset: import, check, fold traits, edit captions, undo")
    ds = p.add_subparsers(dest="dataset_command", required=True)
    imp = ds.add_parser("import", help="copy a folder of pictures into a project (kohya layout)")
    imp.add_argument("source")
    imp.add_argument("project")
    imp.add_argument("--trigger", required=True)
    imp.add_argument("--class-word", default="")
    imp.add_argument("--repeats", type=int, default=0, help="default: suggested from the image count and goal")
    imp.add_argument("--goal", choices=("character", "style", "concept"), default="character")
    imp.add_argument("--recursive", action="store_true")
    imp.add_argument("--keep-duplicates", action="store_true")
    imp.set_defaults(func=cmd_import)
    chk = ds.add_parser("check", help="the checks before training (exit 1 when training would fail)")
    chk.add_argument("folder", help="the training folder (holds <N>_<name> folders), e.g. <project>/img")
    chk.add_argument("--resolution", type=int, default=512)
    chk.add_argument("--no-buckets", action="store_true")
    chk.add_argument("--max-token-length", type=int, choices=(75, 150, 225), default=75,
                     help="the training's max_token_length: longer captions are named")
    chk.add_argument("--goal", choices=("character", "style", "concept"), default="character")
    chk.add_argument("--trigger", default="")
    chk.set_defaults(func=cmd_check)
    for name, func, helptext in (("fold", cmd_fold, "fold trait tags into the trigger word"),
                                 ("edit", cmd_edit, "add, remove, replace or move tags in every caption")):
        e = ds.add_parser(name, help=helptext)
        e.add_argument("folder", help="the training folder or one concept folder")
        e.add_argument("--apply", action="store_true", help="write the changes (default: show them)")
        e.add_argument("--show", type=int, default=10, help="changes to print")
        if name == "fold":
            e.add_argument("--trigger", required=True)
            e.add_argument("--tags", required=True, help="comma-separated trait tags, e.g. 'blue hair, red eyes'")
        else:
            e.add_argument("--add")
            e.add_argument("--remove")
            e.add_argument("--replace", help="OLD=NEW")
            e.add_argument("--front", action="store_true", help="with --add: put the tags first")
            e.add_argument("--move-to-front", help="tags to move to the front")
        e.set_defaults(func=func)
    undo = ds.add_parser("undo", help="undo the last caption edit of a folder")
    undo.add_argument("folder")
    undo.set_defaults(func=cmd_undo)
