"""Short background jobs (catalog of methods/archs, parameter counts, gallery, export) off the GUI thread.

Each job is a plain function that may import torch; `start_task` runs it in Qt's thread pool (a superqt
FunctionWorker) and delivers the result, or the error as one sentence, to callbacks in the GUI thread. Nothing here
does training maths: it calls the core. The training run itself is not a task: it has its own QThread (worker.py).
"""

from __future__ import annotations

import importlib
import traceback
from pathlib import Path

from PySide6.QtCore import QObject, QThreadPool, Signal, Slot
from superqt.utils import create_worker

from ..core.errors import KDError


def error_sentence(exc: BaseException) -> str:
    """What the user reads: a KDError's own sentence, else the unexpected exception named."""
    return str(exc) if isinstance(exc, KDError) else f"Unexpected error: {exc!r}"


class Task(QObject):
    """One background job on behalf of `owner`; `finished` is emitted (GUI thread) after the callback ran.

    The task is a child of its owner while the job runs: when the owner (a page, the info hub) is deleted first,
    the task goes with it, Qt drops the queued result, and no callback touches a deleted widget."""

    finished = Signal()

    def __init__(self, owner: QObject, fn, args, on_done=None, on_error=None):
        super().__init__(owner)
        self.on_done, self.on_error = on_done, on_error
        self.result = self.error = None
        self.worker = create_worker(fn, *args, _connect={"returned": self._returned, "errored": self._errored})

    @Slot(object)
    def _returned(self, value) -> None:
        self.result = value
        if self.on_done is not None:
            self.on_done(value)
        self._end()

    @Slot(object)
    def _errored(self, exc: BaseException) -> None:
        self.error = (error_sentence(exc), "".join(traceback.format_exception(exc)))
        if self.on_error is not None:
            self.on_error(*self.error)
        self._end()

    def _end(self) -> None:
        self.finished.emit()
        self.setParent(None)  # delivered: whoever still holds the task (a test, a page) keeps it, else it is freed


def start_task(fn, *args, owner: QObject, on_done=None, on_error=None) -> Task:
    """Run fn(*args) in the thread pool; on_done(result) or on_error(message, details) run in the GUI thread,
    unless `owner` has been deleted by then."""
    return Task(owner, fn, args, on_done, on_error)


def wait_for_tasks(ms: int = 10_000) -> bool:
    """Block until the jobs still running have ended (at quit: an export is not cut off mid-file, and no job
    reports to objects Python is tearing down); True when they all did within `ms`."""
    return QThreadPool.globalInstance().waitForDone(ms)


# ---- jobs (called in the background thread) ---------------------------------------------------------------

def load_catalog() -> dict:
    """Import torch and the registries: methods with params and docs, architectures, the device."""
    import torch

    from ..core import losses, models
    importlib.import_module("kdstudio.core.pipeline.engine")  # the engine's own imports happen here, not mid-run
    _warm_up(torch)
    methods = {}
    for name, info in losses.available().items():
        cls = losses.REGISTRY.get(name)
        doc = " ".join((cls.__doc__ or "").split()) if cls is not None else info.get("doc", "")
        methods[name] = dict(info, full_doc=doc)
    device = "CPU"
    if torch.cuda.is_available():
        device = f"CUDA: {torch.cuda.get_device_name(0)}"
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        device = "Apple MPS"
    return {"methods": methods, "archs": models.catalog(), "torch": torch.__version__, "device": device,
            "student_teacher": hasattr(models, "student_spec")}


def _warm_up(torch) -> None:
    """Pay torch's lazy imports now, off the GUI thread, instead of mid-run.

    The first optimizer a process creates imports torch._dynamo (~800 modules, 1-2 s holding the GIL much of
    the time); during a run that froze the window for hundreds of milliseconds.
    """
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([p], lr=0.1)
    p.sum().backward()
    opt.step()


_DATA_CACHE: dict[str, tuple] = {}
_BUNDLE: dict[str, object] = {}  # the loaded data of _DATA_CACHE's entry, while the teacher comes from a file
_TEACHER_CACHE: dict[tuple, tuple] = {}  # (data, [teacher], file stamp) -> (count, note, summary, error)


def _data_key(cfg) -> str:
    from ..core import config as config_mod
    t = cfg.teacher  # a pretrained teacher's own preprocessing sizes the data (data.preprocess)
    return config_mod.dumps(cfg).split("[teacher]")[0] + repr((t.source, t.arch, t.path, t.pretrained))


def _data_shape(cfg) -> tuple:
    """(input_shape, num_classes, sizes, name, warnings) of the config's data, cached per [data] section."""
    key = _data_key(cfg)
    if key not in _DATA_CACHE:
        from ..core.data import load_data
        b = load_data(cfg)
        _DATA_CACHE.clear()
        _BUNDLE.clear()
        if cfg.teacher.source == "file":  # kept only where a teacher file will be checked against it
            _BUNDLE[key] = b
        _DATA_CACHE[key] = (tuple(b.input_shape), b.num_classes, b.sizes(), b.name, list(b.warnings),
                            _preview(b))
    return _DATA_CACHE[key]


def _preview(bundle, per_class: int = 8, max_classes: int = 20, max_side: int = 40) -> dict | None:
    """Class counts per split and a mosaic of training samples (uint8 H×W×3 numpy array, one row per class)."""
    try:
        from ..core.data.preview import class_counts, sample_grid
    except ImportError:
        return None
    import torch
    import torch.nn.functional as F
    out = {"counts": class_counts(bundle), "class_names": list(bundle.class_names), "mosaic": None,
           "data_path": getattr(bundle, "mode_reason", ""),  # streamed: a sample is decoded, not every file
           "inputs": getattr(bundle, "inputs", ""), "inputs_from_teacher": bool(getattr(bundle, "preprocessing", None))}
    grid = sample_grid(bundle, per_class=per_class)
    images = grid["images"]
    if images is None:
        return out
    images = images[:max_classes]
    k, p, c, h, w = images.shape
    flat = images.reshape(k * p, c, h, w)
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
        flat = F.interpolate(flat, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="area")
        h, w = flat.shape[-2:]
    rgb = flat[:, :3] if c >= 3 else flat[:, :1].expand(-1, 3, -1, -1)
    pad = 1
    canvas = torch.ones(k * (h + pad) + pad, p * (w + pad) + pad, 3)
    tiles = rgb.reshape(k, p, 3, h, w).permute(0, 1, 3, 4, 2)
    for i in range(k):
        for j in range(min(p, grid["counts"][i])):
            y0, x0 = pad + i * (h + pad), pad + j * (w + pad)
            canvas[y0:y0 + h, x0:x0 + w] = tiles[i, j]
    out["mosaic"] = (canvas.clamp(0, 1) * 255).to(torch.uint8).numpy()
    out["shown_classes"] = k
    return out


def _untrusted(e, role: str) -> dict:
    """What the trust prompt needs about a refused file."""
    return {"role": role, "path": str(e.path), "kind": e.kind, "sha256": e.sha256}


def model_info(cfg) -> dict:
    """Data shape, teacher and student parameter counts (built, not trained) and their ratio; `untrusted` lists
    the program-like files (TorchScript, pickle, file.py) that were not run because they are not trusted."""
    from ..core import models, trust
    shape, classes, sizes, name, warnings, preview = _data_shape(cfg)
    out: dict = {"input_shape": shape, "num_classes": classes, "sizes": sizes, "data_name": name,
                 "warnings": warnings, "preview": preview, "teacher": None, "student": None, "errors": {},
                 "untrusted": []}
    t = cfg.teacher
    try:
        if t.source == "train":
            teacher = models.build(t.arch, classes, shape, t.width, t.depth)
            out["teacher"] = models.count_params(teacher)
            out["teacher_summary"] = _summary(models, teacher, shape)
        else:
            _file_teacher(cfg, models, shape, out)
    except trust.UntrustedFile as e:
        out["errors"]["teacher"] = str(e)
        out["untrusted"].append(_untrusted(e, "teacher"))
    except KDError as e:
        out["errors"]["teacher"] = str(e)
    try:
        build_student = getattr(models, "build_student", None)
        s = cfg.student
        student = build_student(cfg, classes, shape) if build_student else \
            models.build(s.arch, classes, shape, s.width, s.depth)
        out["student"] = models.count_params(student)
        out["student_summary"] = _summary(models, student, shape)
    except trust.UntrustedFile as e:
        out["errors"]["student"] = str(e)
        out["untrusted"].append(_untrusted(e, "student"))
    except KDError as e:
        out["errors"]["student"] = str(e)
    if out["teacher"] and out["student"]:
        out["ratio"] = out["teacher"] / out["student"]
    return out


def _file_teacher(cfg, models, shape, out: dict) -> None:
    """Load cfg.teacher.path on the CPU as a run would, checked against the data; its parameter count (or the
    one-sentence reason it cannot be loaded) goes into `out`. Cached per data, [teacher] settings and file."""
    import torch

    from ..core.data import load_data
    from ..core.models.teacher_formats import OnnxTeacher
    from ..core.models.teacher_io import load_teacher
    t = cfg.teacher
    path = Path(t.path).expanduser() if t.path else None
    try:  # a Hugging Face model folder changes when a file in it does, not the folder itself
        files = sorted(path.iterdir()) if path and path.is_dir() else [path] if path else []
        stamp = tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files) or None
    except OSError:
        stamp = None
    from ..core import trust
    key = (_data_key(cfg), repr(sorted(vars(t).items())), stamp, trust.generation())
    if key not in _TEACHER_CACHE:
        count = note = summary = error = untrusted = None
        try:
            bundle = _BUNDLE.get(key[0]) or load_data(cfg)
            warnings: list[str] = []
            teacher = load_teacher(cfg, bundle, torch.device("cpu"), warn=warnings.append)
            if isinstance(teacher, OnnxTeacher):
                error = ("ONNX teacher: parameters not available (a graph run by onnxruntime; file "
                         f"{teacher.file_bytes / 1e6:.2f} MB)")
            else:
                count = models.count_params(teacher)
                note = f"loaded from {path.name}" + (f" · ⚠ {warnings[0]}" if warnings else "")
                summary = _summary(models, teacher, shape)
        except trust.UntrustedFile as e:  # nothing of the file ran; the window asks whether to trust it
            error, untrusted = str(e), _untrusted(e, "teacher")
        except KDError as e:
            error = str(e)
        except Exception as e:  # noqa: BLE001 - a strange file must not hide the student's count
            error = f"Teacher file '{path}' could not be loaded ({type(e).__name__}: {e})."
        _TEACHER_CACHE.clear()
        _TEACHER_CACHE[key] = (count, note, summary, error, untrusted)
    count, note, summary, error, untrusted = _TEACHER_CACHE[key]
    if untrusted:
        out["untrusted"].append(untrusted)
    out["teacher"], out["teacher_note"], out["teacher_summary"] = count, note, summary
    if error:
        out["errors"]["teacher"] = error


def gallery(run_dir: Path, model: str, limit: int) -> list[dict]:
    """Misclassified test images of one model (core.artifacts.gallery), each image as uint8 (H, W) or (H, W, 3)."""
    import numpy as np

    from ..core.outputs.artifacts import gallery as core_gallery
    out = []
    for item in core_gallery(Path(run_dir), model=model, limit=limit):
        img = np.asarray(item["image"], dtype=np.float32)
        if img.ndim == 3:
            img = img[..., :3] if img.shape[2] >= 3 else img[..., 0]
        item["image"] = np.ascontiguousarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8))
        out.append(item)
    return out


def _summary(models, model, shape) -> dict | None:
    """The zoo's layer summary (name, type, output shape, parameters), or None when unavailable."""
    fn = getattr(models, "summary", None)
    try:
        return fn(model, shape) if fn else None
    except Exception:  # noqa: BLE001 - a missing table must not hide the parameter counts
        return None


def export_run(run_dir: Path, formats: list[str], out_dir: Path, quantize: str = "none", model: str = "auto",
               force: bool = False) -> dict:
    """Export a finished run's student with the core's run-level export; {"exports", "failed", "model", "out"}."""
    from ..core.outputs.artifacts import export_run as core_export_run
    from ..core.outputs.export import ExportExistsError
    try:
        return core_export_run(Path(run_dir), list(formats), quantize=quantize, out=Path(out_dir), force=force,
                               model=model)
    except ExportExistsError as e:  # the core's sentence speaks to the CLI ("add --force"); the window asks
        raise KDError(f"'{e.path.name}' appeared in {e.path.parent} after the question was asked; press Export "
                      "again to be asked about it, or choose another folder.") from None
