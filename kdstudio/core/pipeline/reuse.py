"""Never train the same teacher twice: the keys a trained teacher (and a sweep's baseline) is found by, and moving
their weights between the store (store/teachers.py) and a run folder.

A teacher's key is everything its weights depend on: its settings (arch, width, depth, epochs, lr), the training
settings every stage shares (optimizer, weight decay, schedule, batch size, augmentation, mixed precision, gradient
clipping), what the data is and how it is split and preprocessed (the [data] settings, with the sizes and change
times of its files), the seed, and the code version of the arch (a hash of the file that builds it, or the
package's version for torchvision:/timm: names; for generated data, a hash of its generator). Settings that say only
how data is fed (mode, workers, prefetch, memory budget) or which device runs it are left out: they change speed, not
the teacher. Keys hold every setting's value, defaults included: a default that changes (the quick try's synthetic
data did) must change the key, or a run would reuse a teacher trained on other data.

A baseline depends on the student instead of the teacher, on the distillation stage's budget (epochs, lr, EMA), and
on the same data and training settings, but not on the distillation method, temperature or alpha.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

import torch

from ..store.files import RunDir, atomic_save_buffered
from ..store.teachers import StoredTeacher, TeacherStore, runs_base
from ..train.checkpoints import read_checkpoint

FEED_ONLY = ("mode", "memory_budget_gb", "workers", "prefetch")   # [data] keys that do not change the data


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def arch_code(arch: str) -> str:
    """The code version of an arch: a hash of the file that builds it (zoo or file.py:factory), or the package
    version of torchvision:/timm: names."""
    from .. import models
    from ..models.custom import is_custom_name
    from ..models.hub import is_hub_name
    try:
        if is_hub_name(arch):
            package = arch.split(":", 1)[0]
            return f"{package}-{metadata.version(package)}"
        if is_custom_name(arch):
            return _hash_file(Path(arch.rpartition(":")[0]).expanduser())
        if arch in models.ARCHS:
            return _hash_file(Path(inspect.getsourcefile(models.ARCHS.get(arch))))
    except (OSError, TypeError, metadata.PackageNotFoundError):
        pass
    return "unknown"


def _fingerprint(path: str) -> dict | None:
    """Sizes and change times of a data file or folder (cheap: no file is read)."""
    if not path:
        return None
    p = Path(path).expanduser()
    try:
        if p.is_file():
            st = p.stat()
            return {"path": str(p.resolve()), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
        count = size = newest = 0
        for folder, _dirs, files in os.walk(p):
            for name in files:
                st = os.stat(os.path.join(folder, name))
                count, size, newest = count + 1, size + st.st_size, max(newest, st.st_mtime_ns)
        return {"path": str(p.resolve()), "files": count, "bytes": size, "mtime_ns": newest}
    except OSError:
        return {"path": str(p), "missing": True}


def _data_part(cfg) -> dict:
    d = {k: v for k, v in cfg.to_dict()["data"].items() if k not in FEED_ONLY}
    d["files"] = {k: _fingerprint(getattr(cfg.data, k)) for k in ("path", "val_path", "test_path")
                  if getattr(cfg.data, k)}
    if cfg.data.source == "synthetic":  # the data is what its generator's code makes of these settings
        from ..data import synthetic
        d["generator"] = _hash_file(Path(inspect.getsourcefile(synthetic)))
    return d


def _training_part(cfg) -> dict:
    from ..train.distributed import world
    dc = cfg.distill
    part = {"optimizer": dc.optimizer, "weight_decay": dc.weight_decay, "scheduler": dc.scheduler,
            "batch_size": cfg.data.batch_size, "augment": cfg.data.augment, "amp": dc.amp, "grad_clip": dc.grad_clip}
    if world() > 1:  # batch_size is per process: N processes train other weights (keys of one process unchanged)
        part["processes"] = world()
    return part


def _key_id(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:12]


def teacher_key(cfg) -> tuple[str, dict]:
    """(id, key inputs) of the teacher this config trains."""
    t = cfg.teacher
    inputs = {"teacher": {"arch": t.arch, "width": t.width, "depth": t.depth, "epochs": t.epochs, "lr": t.lr},
              "training": _training_part(cfg), "data": _data_part(cfg), "seed": cfg.seed,
              "arch_code": arch_code(t.arch)}
    return _key_id(inputs), inputs


def baseline_key(cfg) -> str:
    """The id of the baseline this config trains (the same for configs that differ only in distillation)."""
    t, dc = cfg.teacher, cfg.distill
    student = dict(cfg.to_dict()["student"])
    if student["arch"] == "teacher":  # the teacher's family: its arch settings shape the student
        student["teacher"] = {"arch": t.arch, "width": t.width, "depth": t.depth}
    inputs = {"student": student, "budget": {"epochs": dc.epochs, "lr": dc.lr, "ema": dc.ema},
              "training": _training_part(cfg), "data": _data_part(cfg), "seed": cfg.seed,
              "arch_code": arch_code(t.arch if student["arch"] == "teacher" else student["arch"])}
    return _key_id(inputs)


def reusable_teacher(cfg, store: TeacherStore | None, key: tuple[str, dict] | None = None) -> StoredTeacher | None:
    """The stored teacher this run uses instead of training one: the one teacher.reuse names, else (auto) the one
    stored under this config's key (`key`: teacher_key(cfg), when known); None when it trains its own."""
    from ..errors import KDError
    t = cfg.teacher
    if t.source != "train" or t.reuse == "never" or store is None:
        return None
    if t.reuse == "auto":
        return store.get((key or teacher_key(cfg))[0])
    found = store.get(t.reuse)
    if found is None:
        raise KDError(f"teacher.reuse = \"{t.reuse}\" but no stored teacher has that id in '{store.root}'; pick "
                      "one listed on the Teacher page, or set teacher.reuse = \"auto\".")
    arch = found.meta.get("arch") or {}
    mine = {"arch": t.arch, "width": t.width, "depth": t.depth}
    if any(arch.get(k) != v for k, v in mine.items()):
        raise KDError(f"teacher.reuse picks stored teacher {t.reuse}, a {arch.get('arch')} (width {arch.get('width')}, "
                      f"depth {arch.get('depth')}), but teacher.arch/width/depth say {t.arch} ({t.width}, {t.depth}); "
                      "set them to the stored teacher's, or set teacher.reuse = \"auto\".")
    return found


def run_label(rd: RunDir, store: TeacherStore) -> str:
    """The run's name as the store records it: '20261201-200111', or 'sweep/point/seed-0'."""
    try:
        return Path(os.path.relpath(rd.root.resolve(), runs_base(store.root).resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return rd.root.name


def _link_or_copy(src: Path, dest: Path) -> None:
    """`dest` becomes the same file as `src`: a hard link (no space used), else an atomic copy."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)
        return
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def adopt_teacher(stored: StoredTeacher, rd: RunDir, device) -> dict:
    """The stored teacher's weights as this run's own finished teacher checkpoint (resume, eval and export read
    it there); returns the checkpoint."""
    dest = rd.checkpoint("teacher")
    _link_or_copy(stored.weights, dest)
    return read_checkpoint(dest, device, need=("model",))


def store_teacher(store: TeacherStore, cfg, module: torch.nn.Module, entry, rd: RunDir, data,
                  key: tuple[str, dict] | None = None) -> StoredTeacher:
    """Keep a teacher trained in this run in the store (kept as it is when its key is stored already); `key`:
    teacher_key(cfg) when the run has it already (it walks the data folders)."""
    teacher_id, inputs = key or teacher_key(cfg)
    state = {"model": {k: v.detach().cpu() for k, v in module.state_dict().items()}, "complete": True,
             "stage": "teacher"}
    t = cfg.teacher
    meta = {"key": inputs, "run": run_label(rd, store), "run_dir": str(rd.root),
            "arch": {"arch": t.arch, "width": t.width, "depth": t.depth, "num_classes": data.num_classes,
                     "input_shape": list(data.input_shape)},
            "accuracy": entry.accuracy, "val_accuracy": entry.val_accuracy, "params": entry.params,
            "data_name": getattr(data.bundle, "name", "")}
    return store.add(teacher_id, lambda path: atomic_save_buffered(path, lambda buf: torch.save(state, buf)), meta)


def adopt_baseline(source: Path, rd: RunDir) -> bool:
    """Take a finished baseline of another run folder (a sweep's earlier point) as this run's; False when that
    folder holds no finished baseline."""
    src = RunDir(source)
    path = src.checkpoint("baseline")
    try:
        if not read_checkpoint(path).get("complete"):
            return False
    except Exception:  # noqa: BLE001 - missing or damaged: this run trains its own
        return False
    _link_or_copy(path, rd.checkpoint("baseline"))
    best = src.checkpoints / "baseline.best.pt"
    if best.is_file():
        _link_or_copy(best, rd.checkpoints / "baseline.best.pt")
    else:
        (rd.checkpoints / "baseline.best.pt").unlink(missing_ok=True)
    return True
