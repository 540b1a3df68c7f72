"""Data, Teacher and Student pages: the forms plus what the settings mean (data shape, parameter counts)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QInputDialog

from .. import theme
from ..info import InfoHub, trained_note
from ..model import ConfigModel
from ..widgets import DropZone, FileDrop, StatCard, card_row, file_suffix, fmt_int, ratio_words
from . import custom_arch
from .base import FormPage, rest_of
from .preview import DataPreview, LayerTable
from .teacher_store import StoredTeachers

NEEDS_PATH = ("tensors", "folder", "csv")
TEACHER_FILES = (".pt", ".pth", ".ts", ".safetensors", ".onnx", ".pkl", ".ckpt", ".bin")  # what load_teacher reads
HF_CONFIG = "config.json"  # a folder with it is a Hugging Face model (core/models/hf.py; not imported: torch)


def is_hf_folder(path: str) -> bool:
    """Whether `path` is a Hugging Face model folder (save_pretrained's, with a config.json)."""
    p = Path(path).expanduser()
    return p.is_dir() and (p / HF_CONFIG).is_file()
SPLITS = ("train", "val", "test")
# [data] settings that change how batches are fed, not which samples there are: the preview and counts stay
FEEDING = ("data.batch_size", "data.workers", "data.prefetch", "data.augment", "data.memory_budget_gb")
REUSE_CHOICES = ["auto", "never"]


class DataPage(FormPage):
    """Where the data comes from, how it is split and fed."""

    title = "Data"
    intro = ("The data set the teacher was (or will be) trained on. Validation and test splits are cut with a fixed "
             "seed, so every run of this project sees the same examples.")

    def __init__(self, model: ConfigModel, hub: InfoHub, run=None, parent=None):
        self.hub = hub
        super().__init__(model, parent)
        if run is not None:  # while a run fills its disk teacher cache, the page says how far it is
            run.events.connect(lambda _batch: self._show_fill(run.live))
            run.state_changed.connect(lambda state: state == "idle" and self._show_fill(None))
        hub.info_ready.connect(self._show_info)
        hub.info_failed.connect(lambda m: self.card.set("–", m))
        hub.busy.connect(lambda b: b and self.card.detail.setText("Reading the data…"))
        hub.info_stale.connect(self._stale)
        if hub.info is not None:  # counted before this page was built
            self._show_info(hub.info)
        elif hub.failure:
            self.card.set("–", hub.failure)

    def build(self) -> None:
        self.card = StatCard("Data set")
        self.split_card = StatCard("Splits (samples)")
        self.body.addWidget(card_row(self.card, self.split_card))
        self.preview = DataPreview()
        self.body.addWidget(self.preview)
        f = self.form
        source = ["data.source", "data.path", "data.val_path", "data.test_path", "data.label_column",
                  "data.skip_unreadable", "data.class_names"]
        splits = ["seed", "data.val_fraction", "data.test_fraction"]
        inputs = ["data.batch_size", "data.augment", "data.preprocess", "data.image_size", "data.resize",
                  "data.interpolation", "data.normalize", "data.mean", "data.std"]
        synthetic = [k for k in rest_of("data", []) if k.startswith("data.synthetic_")]
        f.add_group("Source", source)
        f.add_group("Splits", splits)
        f.add_group("Batches and inputs", inputs)
        f.add_group("Synthetic data", synthetic)
        rest = rest_of("data", source + splits + inputs + synthetic)
        if rest:
            f.add_group("More data settings", rest)
        src = lambda c: c.data.source  # noqa: E731
        for k in ("data.path", "data.val_path", "data.test_path"):
            f.visible_when[k] = lambda c: src(c) in NEEDS_PATH
        f.visible_when["data.label_column"] = lambda c: src(c) == "csv"
        f.visible_when["data.skip_unreadable"] = lambda c: src(c) == "folder"
        for k in synthetic:
            f.visible_when[k] = lambda c: src(c) == "synthetic"

    def _show_fill(self, live) -> None:
        line = live.cache_line() if live is not None else ""
        self.preview.fill_note.setText(line)
        self.preview.fill_note.setVisible(bool(line))

    def _stale(self, key: str) -> None:
        """Another source (or split, or path): the old numbers and pictures go at once, before the new ones come."""
        if key and (key in FEEDING or not (key.startswith("data.") or key == "seed")):
            return
        self.card.set("…", "Reading the data…")
        self.split_card.set("…", "")
        self.preview.show_preview(None)
        self.preview.image.setText("Reading the data…")
        self.preview.chart.hide()  # its axes would still count the old classes

    def _show_info(self, info: dict) -> None:
        shape = "×".join(str(d) for d in info["input_shape"])
        sizes = info["sizes"]
        self.card.set(info.get("data_name") or self.model.cfg.data.source,
                      f"{info['num_classes']} classes · input {shape}"
                      + ("".join(f"\n⚠ {w}" for w in info.get("warnings", [])[:3])))
        order = [k for k in ("train", "val", "test") if k in sizes] + [k for k in sizes if k not in SPLITS]
        self.split_card.set(f"{sum(sizes.values()):,}", " · ".join(f"{k} {sizes[k]:,}" for k in order))
        self.preview.show_preview(info.get("preview"))
        self.preview.chart.show()


class _ModelPage(FormPage):
    """Shared by Teacher and Student: architecture choices from the zoo and the parameter cards."""

    role = "teacher"

    def __init__(self, model: ConfigModel, hub: InfoHub, parent=None):
        self.hub = hub
        super().__init__(model, parent)
        hub.catalog_ready.connect(self._fill_archs)
        hub.info_ready.connect(self._show_info)
        hub.info_failed.connect(lambda m: self.params_card.set("–", m))
        hub.busy.connect(lambda b: b and self.params_card.detail.setText("Counting parameters…"))
        model.config_changed.connect(lambda _k: self._waiting())
        self.file_drop = FileDrop(self.widget())  # drop a file anywhere on the page
        self.file_drop.dropped.connect(self.drop_files)
        # built when first shown: the catalog and the counts may be there already
        if hub.catalog is not None:
            self._fill_archs(hub.catalog)
        if hub.info is not None:
            self._show_info(hub.info)
        elif hub.failure:
            self.params_card.set("–", hub.failure)
        elif model.cfg is not None:
            self._waiting()

    def _waiting(self) -> None:
        if self.hub.info is None:
            self.params_card.set("…", "Waiting for PyTorch to count parameters." if self.hub.catalog is None
                                 else "Counting…")

    def no_text_drops(self, key: str) -> None:
        """A file dropped on this field's box sets the model (drop_files), not the box's text."""
        editor = getattr(self.form.fields.get(key), "editor", None)
        for w in (editor, getattr(editor, "lineEdit", lambda: None)()):
            if w is not None:
                w.setAcceptDrops(False)

    def config_changed(self, key: str) -> None:
        if key == "":  # another project (or its config reloaded): the last drop's line is stale
            self.drop.say("")

    def one_drop(self, paths: list[str], what: str) -> str | None:
        """The one dropped path, or None after saying why a drop of `what` cannot be used here."""
        if self.model.cfg is None:
            self.drop.say(f"Open or create a project first; the {self.role} is part of a project.", problem=True)
            return None
        if len(paths) != 1:
            self.drop.say(f"{len(paths)} files were dropped; drop one {what} at a time.", problem=True)
            return None
        return paths[0]

    def drop_files(self, paths: list[str]) -> None:
        """Dropped files (see the pages)."""

    def build(self) -> None:
        self.params_card = StatCard(f"{self.role.capitalize()} parameters")
        self.other_card = StatCard("Teacher parameters" if self.role == "student" else "Student parameters")
        self.ratio_card = StatCard("Teacher / student")
        self.body.addWidget(card_row(self.params_card, self.other_card, self.ratio_card))
        self.layers = LayerTable(f"{self.role.capitalize()} layers")

    def after_form(self) -> None:
        self.body.addWidget(self.layers)

    def arch_choices(self, catalog: dict) -> list[str]:
        """Names for the arch combo box."""
        return [a["name"] for a in catalog["archs"]]

    def _fill_archs(self, catalog: dict) -> None:
        f = self.form.fields.get(f"{self.role}.arch")
        if f is None:
            return
        docs = {a["name"]: f"{a['doc']} (default width {a['width']}, depth {a['depth']})" for a in catalog["archs"]}
        f.set_choices(self.arch_choices(catalog), docs=docs)
        f.set_value(self.model.cfg.get(f"{self.role}.arch") if self.model.cfg else "")

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        """A run may have finished since the cards were filled: say again whether the models are trained."""
        super().showEvent(event)
        if self.hub.info is not None:
            self._card_details(self.hub.info)

    def _card_details(self, info: dict) -> None:
        """Under each count: why it could not be counted, where the model was loaded from, which run trained it,
        or that it is not trained yet."""
        other_role = "student" if self.role == "teacher" else "teacher"
        err = info.get("errors", {})
        trained = lambda role: trained_note(self.model.project, self.model.cfg, role)  # noqa: E731
        detail = err.get(self.role) or info.get(f"{self.role}_note") or trained(self.role) or \
            "built for this data, not yet trained"
        preview = info.get("preview") or {}
        if self.role == "teacher" and preview.get("inputs_from_teacher"):  # its own preprocessing sizes the data
            detail += "\n" + preview["inputs"]
        self.params_card.detail.setText(detail)
        self.other_card.detail.setText(err.get(other_role) or info.get(f"{other_role}_note") or trained(other_role)
                                       or "")

    def _show_info(self, info: dict) -> None:
        other_role = "student" if self.role == "teacher" else "teacher"
        mine, other = info.get(self.role), info.get(other_role)
        err = info.get("errors", {})
        self.params_card.value.setText(fmt_int(mine))
        self.other_card.value.setText(fmt_int(other))
        self._card_details(info)
        for card, role in ((self.params_card, self.role), (self.other_card, other_role)):  # a load error in red
            bad = bool(err.get(role)) and not err[role].startswith("ONNX teacher")
            card.detail.setStyleSheet(f"color: {theme.color('error')};" if bad else "")
        ratio = info.get("ratio")
        number, word = ratio_words(ratio, "smaller", "larger")
        self.ratio_card.set(number, f"the student is that many times {word}" if word else "")
        self.layers.show_summary(info.get(f"{self.role}_summary"))


class TeacherPage(_ModelPage):
    """Train the teacher here or load one from a file."""

    title = "Teacher"
    intro = ("The model whose knowledge is distilled. Train it here on the project's data, or load a model you "
             "trust from a file (TorchScript, state_dict, safetensors, ONNX) or a Hugging Face model folder.")
    role = "teacher"

    def __init__(self, model: ConfigModel, hub: InfoHub, parent=None):
        super().__init__(model, hub, parent)
        self.no_text_drops("teacher.path")

    def build(self) -> None:
        super().build()
        self.drop = DropZone("Drop a teacher file (" + ", ".join(TEACHER_FILES) + ") or a Hugging Face model "
                             "folder anywhere on this page, or choose source \"file\" and use File… or Folder… "
                             "next to the path.")
        self.body.addWidget(self.drop)
        self.stored = StoredTeachers(self.model)  # the project's trained teachers, reused by later runs
        self.stored.listed.connect(self._reuse_choices)
        self.body.addWidget(self.stored)
        f = self.form
        model = ["teacher.source", "teacher.arch", "teacher.width", "teacher.depth", "teacher.path",
                 "teacher.pretrained", "teacher.trust_pickle"]
        train = ["teacher.epochs", "teacher.lr", "teacher.reuse"]
        tune = ["teacher.finetune_layers", "teacher.finetune_epochs", "teacher.skip_sanity_check"]
        f.add_group("Model", model, **{"teacher.arch": {"editable_choices": True, "choices": []}})
        f.add_group("Training", train, **{"teacher.reuse": {"editable_choices": True, "choices": REUSE_CHOICES}})
        f.add_group("Loaded teacher", tune)
        rest = rest_of("teacher", model + train + tune)
        if rest:
            f.add_group("More teacher settings", rest)
        from_file = lambda c: c.teacher.source == "file"  # noqa: E731
        for k in ("teacher.path", "teacher.pretrained", "teacher.trust_pickle", *tune):
            f.visible_when[k] = from_file
        f.visible_when["teacher.epochs"] = lambda c: not from_file(c)
        for k in ("teacher.width", "teacher.depth"):  # a Hugging Face folder brings its own sizes
            f.visible_when[k] = lambda c: c.teacher.arch != "hf"
        f.visible_when["teacher.reuse"] = lambda c: not from_file(c)

    def arch_choices(self, catalog: dict) -> list[str]:
        return super().arch_choices(catalog) + ["hf"]  # teacher.path is a Hugging Face model folder

    def _reuse_choices(self, teachers: list) -> None:
        """teacher.reuse offers auto, never and the id of every stored teacher."""
        field = self.form.fields.get("teacher.reuse")
        if field is not None:
            field.set_choices(REUSE_CHOICES + [t.id for t in teachers],
                              docs={t.id: f"{t.description} (trained in run {t.run})" for t in teachers})
            field.set_value(self.model.cfg.teacher.reuse if self.model.cfg else "auto")

    def config_changed(self, key: str) -> None:
        super().config_changed(key)
        self.stored.setVisible(self.model.cfg is not None and self.model.cfg.teacher.source == "train")

    def drop_files(self, paths: list[str]) -> None:
        """A drop: a model file becomes the teacher (source "file"); anything else gets one sentence why not."""
        path = self.one_drop(paths, "teacher file")
        if path is None:
            return
        name = Path(path).name or path
        folder = is_hf_folder(path)
        if Path(path).is_dir() and not folder:
            self.drop.say(f"'{name}' is a folder without a config.json, so not a Hugging Face model folder; drop "
                          "the model file inside it, or a folder saved with save_pretrained.", problem=True)
            return
        if not folder and file_suffix(path) not in TEACHER_FILES:
            self.drop.say(f"'{name}' is not a model file KD Studio can load as a teacher; drop a "
                          + ", ".join(TEACHER_FILES[:-1]) + f" or {TEACHER_FILES[-1]} file, or a Hugging Face "
                          "model folder.", problem=True)
            return
        self.model.set("teacher.source", "file")
        self.model.set("teacher.path", path)
        self.drop.say(f"Hugging Face teacher folder: {path}" if folder else f"Teacher file: {path}")


class StudentPage(_ModelPage):
    """The much smaller model that learns from the teacher."""

    title = "Student"
    intro = ("The small model you will deploy. Pick an architecture from the zoo, or \"teacher\" for the teacher's "
             "family, and shrink it with the width and depth multipliers.")
    role = "student"

    def __init__(self, model: ConfigModel, hub: InfoHub, parent=None):
        super().__init__(model, hub, parent)
        self.no_text_drops("student.arch")

    def build(self) -> None:
        super().build()
        self.drop = DropZone("Drop a Python file (.py) anywhere on this page to use your own model as the student: "
                             "its factory function becomes student.arch = \"file.py:factory\" (a function taking "
                             "any of num_classes, input_shape, width, depth). The file runs when the student is "
                             "built, so drop only files you trust.")
        self.body.addWidget(self.drop)
        keys = ["student.arch", "student.width", "student.depth", "student.width_mult", "student.depth_mult"]
        self.form.add_group("Model", keys, **{"student.arch": {"editable_choices": True, "choices": []}})
        rest = rest_of("student", keys)
        if rest:
            self.form.add_group("More student settings", rest)

    def arch_choices(self, catalog: dict) -> list[str]:
        names = super().arch_choices(catalog)
        return (["teacher"] + names) if catalog.get("student_teacher") else names

    def drop_files(self, paths: list[str], factory: str | None = None) -> None:
        """A drop: a .py file's factory function becomes the student architecture ("file.py:factory"); with
        several candidates the user picks one (or `factory` names it); anything else gets one sentence why not."""
        path = self.one_drop(paths, "Python file")
        if path is None:
            return
        name = Path(path).name or path
        if file_suffix(path) != ".py":
            self.drop.say(f"'{name}' is not a Python file; drop a .py file with a function that builds the "
                          "student, such as def make(num_classes, input_shape).", problem=True)
            return
        try:
            found = custom_arch.factory_candidates(path)
        except custom_arch.NotAModelFile as e:
            self.drop.say(str(e), problem=True)
            return
        if not found:
            self.drop.say(f"'{name}' defines no top-level function that could build the student; add one such as "
                          "def make(num_classes, input_shape) returning an nn.Module, and drop it again.",
                          problem=True)
            return
        if factory is None:
            factory = found[0] if len(found) == 1 else self._choose(name, found)
            if factory is None:
                self.drop.say("No factory chosen; the student is unchanged.")
                return
        self.model.set("student.arch", custom_arch.arch_name(path, factory))
        more = f" (chosen from {len(found)} candidates)" if len(found) > 1 else ""
        self.drop.say(f"Student: {factory}() from {Path(path).expanduser().resolve()}{more}.")

    def _choose(self, name: str, found: list[str]) -> str | None:
        """Ask which of several functions builds the student (conventional names come first)."""
        choice, ok = QInputDialog.getItem(self, "Which function builds the student?",
                                          f"'{name}' defines {len(found)} functions or classes that could build "
                                          "the student. Use:", found, 0, False)
        return choice if ok and choice else None
