"""The status bar's GPU figure on a CUDA machine: name, memory in use, utilisation; hidden without CUDA.

The numbers are read every few seconds in Qt's thread pool (tasks.start_task), never in the GUI thread: NVML
(pynvml / nvidia-ml-py, when importable; no hard dependency) gives the device-wide memory and utilisation, torch
gives what this process has allocated. torch's own device queries create a CUDA context, so without NVML they are
asked only once CUDA is initialised (a run has started), and the label waits until then.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel

from . import tasks

REFRESH_MS = 3000
GIB = 1024 ** 3


def format_gpu(sample: dict) -> tuple[str, str]:
    """(label text, tooltip) for one sample: name, memory used / total, utilisation; missing figures left out."""
    name = (sample.get("name") or "GPU").replace("NVIDIA ", "")
    parts = [name]
    used, total = sample.get("used"), sample.get("total")
    if used is not None and total:
        parts.append(f"{used / GIB:.1f}/{total / GIB:.0f} GiB")
    if sample.get("util") is not None:
        parts.append(f"{sample['util']:.0f} %")
    tip = [f"{sample.get('name') or 'GPU'} (cuda:{sample.get('index', 0)})"]
    if used is not None and total:
        tip.append(f"memory in use on the device: {used / GIB:.2f} of {total / GIB:.2f} GiB "
                   f"({used / total:.0%})")
    if sample.get("allocated") is not None:
        tip.append(f"allocated by KD Studio's tensors: {sample['allocated'] / GIB:.2f} GiB")
    if sample.get("util") is not None:
        tip.append(f"GPU utilisation: {sample['util']:.0f} % (NVML, last sample period)")
    elif "nvml" not in sample:
        tip.append("utilisation needs NVML: pip install nvidia-ml-py")
    return " · ".join(parts), "\n".join(tip)


def _nvml(index: int) -> dict | None:
    """Name, memory and utilisation from NVML, or None when pynvml is missing or NVML does not answer."""
    try:
        import pynvml
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(handle)
        mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
        util = pynvml.nvmlDeviceGetUtilizationRates(handle)
    except Exception:  # noqa: BLE001 - no NVML (or no driver) is a normal case, not an error
        return None
    return {"name": name.decode() if isinstance(name, bytes) else str(name), "used": int(mem.used),
            "total": int(mem.total), "util": float(util.gpu), "nvml": True}


def cuda_device_count() -> int:
    """CUDA devices PyTorch sees here (0 until torch has loaded, or without CUDA); the Train page offers GPUs > 1
    when there are several. torch caches the count after its first CUDA query (the catalogue's, in the pool)."""
    torch = sys.modules.get("torch")
    try:
        return int(torch.cuda.device_count()) if torch is not None else 0
    except Exception:  # noqa: BLE001 - a broken CUDA setup counts as none
        return 0


def sample_gpu(index: int = 0) -> dict | None:
    """One reading of the GPU (runs in a worker thread); None when there is no CUDA device."""
    torch = sys.modules.get("torch")  # loaded by the info hub; this never is the first import of torch
    if torch is None or not torch.cuda.is_available():
        return None
    out = _nvml(index) or {}
    out["index"] = index
    if torch.cuda.is_initialized():
        out["allocated"] = int(torch.cuda.memory_allocated(index))
        if "used" not in out:
            free, total = torch.cuda.mem_get_info(index)
            out.update(used=int(total - free), total=int(total), name=torch.cuda.get_device_name(index))
    return out if "name" in out else None


class GpuStatus(QLabel):
    """A permanent status-bar label; shown once a sample says there is a GPU, refreshed every REFRESH_MS."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("help")
        self.hide()
        self._busy = False
        self.timer = QTimer(self, interval=REFRESH_MS, timeout=self.refresh)

    def start(self, catalog: dict) -> None:
        """Begin refreshing when the torch catalogue names a CUDA device; otherwise stay hidden."""
        if "cuda" in str(catalog.get("device", "")).lower() or "cuda" in str(catalog.get("devices", "")).lower():
            self.refresh()
            self.timer.start()

    def refresh(self) -> None:
        """Read the GPU in the thread pool (one reading at a time)."""
        if self._busy:
            return
        self._busy = True
        tasks.start_task(sample_gpu, owner=self, on_done=self.show_sample, on_error=self._failed)

    def show_sample(self, sample: dict | None) -> None:
        """Show one reading (None: hide)."""
        self._busy = False
        if not sample:
            self.hide()
            return
        text, tip = format_gpu(sample)
        self.setText(text)
        self.setToolTip(tip)
        self.show()

    def _failed(self, _message: str, _details: str = "") -> None:
        self._busy = False
        self.timer.stop()  # a device that cannot be read now will not be readable in 3 s either
        self.hide()
