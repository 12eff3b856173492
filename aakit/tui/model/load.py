"""The host's load: GPU utilisation and memory through NVML when a GPU answers, else CPU and RAM."""
from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from typing import Any

@dataclass(frozen=True)
class DeviceLoad:
    """Load of one device: utilisation in percent, memory in bytes."""

    name: str
    util: float | None
    mem_used: float | None
    mem_total: float | None


@dataclass(frozen=True)
class SystemLoad:
    """The load of this host: GPUs (kind ``gpu``) when NVML answers, else CPU and RAM."""

    kind: str
    host: str
    devices: tuple[DeviceLoad, ...]
    note: str = ""


_nvml_lock = threading.Lock()
_nvml_state: dict[str, Any] = {"tried": False, "module": None, "why": ""}


def _nvml() -> Any | None:
    """The initialised ``pynvml`` module, or None when absent or without a driver (tried once)."""
    with _nvml_lock:
        if not _nvml_state["tried"]:
            _nvml_state["tried"] = True
            try:
                import pynvml  # nvidia-ml-py: optional
            except ImportError:
                _nvml_state["why"] = "nvidia-ml-py not installed"
                return None
            try:
                pynvml.nvmlInit()
                _nvml_state["module"] = pynvml
            except Exception:  # NVMLError: no driver, no GPU
                _nvml_state["why"] = "no NVIDIA driver or GPU"
        return _nvml_state["module"]


def _reset_nvml() -> None:
    """Forget the NVML probe (tests swap a fake ``pynvml`` in)."""
    with _nvml_lock:
        _nvml_state.update(tried=False, module=None, why="")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_system_load() -> SystemLoad:
    """GPU utilisation and memory through NVML when a GPU exists, else CPU and RAM (psutil)."""
    host = socket.gethostname()
    nv = _nvml()
    if nv is not None:
        try:
            devices = []
            for i in range(nv.nvmlDeviceGetCount()):
                h = nv.nvmlDeviceGetHandleByIndex(i)
                util = nv.nvmlDeviceGetUtilizationRates(h)
                mem = nv.nvmlDeviceGetMemoryInfo(h)
                devices.append(DeviceLoad(
                    name=f"GPU{i} {_text(nv.nvmlDeviceGetName(h))}",
                    util=float(util.gpu), mem_used=float(mem.used), mem_total=float(mem.total),
                ))
            if devices:
                return SystemLoad(kind="gpu", host=host, devices=tuple(devices))
            note = "no GPU found"
        except Exception as e:  # a GPU that stops answering: show the CPU instead
            note = f"NVML error: {e}"
    else:
        note = f"CPU only: {_nvml_state['why']}" if _nvml_state["why"] else "CPU only"
    import psutil

    vm = psutil.virtual_memory()
    cpu = DeviceLoad(
        name=f"CPU x{os.cpu_count() or '?'}",
        util=float(psutil.cpu_percent(interval=None)),
        mem_used=float(vm.total - vm.available),
        mem_total=float(vm.total),
    )
    return SystemLoad(kind="cpu", host=host, devices=(cpu,), note=note)
