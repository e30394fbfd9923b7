"""Which machine is this: the CPU (vendor, family, model, stepping) and the kernel build.

Cost profiles (:mod:`lbsim.profiles`) are chosen by these facts.  They come from the first
processor block of ``/proc/cpuinfo`` (what arch/x86/kernel/cpu/proc.c:show_cpuinfo prints) and
``uname -r``.  A measurement's ``.host.json`` from an older lbsim records only the model name,
which a VM masks ("AMD EPYC", "Intel(R) Xeon(R) Processor"), and the kernel: the vendor is then
read from the name and family, model and stepping are unknown (None).
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["HostId", "vendor_of_model_name", "kernel_build"]

#: masked model names seen in guests, and the vendor_id each stands for
_VENDOR_WORDS = (("AMD", "AuthenticAMD"), ("Intel", "GenuineIntel"))


def vendor_of_model_name(name: str | None) -> str | None:
    """``"AMD EPYC"`` -> ``AuthenticAMD``, ``"Intel(R) ..."`` -> ``GenuineIntel``, else None."""
    if not name:
        return None
    for word, vendor in _VENDOR_WORDS:
        if word.lower() in name.lower():
            return vendor
    return None


def kernel_build(release: str | None) -> tuple[str, int | None]:
    """Split a release into the tree and its build number: ``6.18.44-fc-v1272`` -> (``6.18.44-fc``, 1272).

    Builds of one tree (the project's VM images: ``-fc-v769``, ``-fc-v1252``, ...) are compared by
    number; a release without a trailing ``vN`` or ``-N`` has no build number.
    """
    if not release:
        return "", None
    m = re.match(r"^(.*?)-?v?(\d+)$", release)
    if m and ("-" in release) and m.group(1):
        return m.group(1), int(m.group(2))
    return release, None


def _int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.strip().isdigit():
        return int(v.strip())
    return None


@dataclass(frozen=True)
class HostId:
    """The facts a cost profile is matched by; any of them may be unknown (None)."""

    vendor_id: str | None
    cpu_family: int | None = None
    model: int | None = None
    stepping: int | None = None
    model_name: str | None = None
    kernel: str | None = None
    hostname: str | None = None

    @classmethod
    def current(cls, cpuinfo: str | Path = "/proc/cpuinfo") -> HostId:
        """This machine: the first processor block of /proc/cpuinfo and ``os.uname()``."""
        fields: dict[str, str] = {}
        try:
            text = Path(cpuinfo).read_text(errors="replace")
        except OSError:
            text = ""
        for line in text.splitlines():
            if not line.strip():
                if fields:
                    break  # the first processor's block only: the others repeat it
                continue
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
        uname = os.uname()
        name = fields.get("model name")
        return cls(vendor_id=fields.get("vendor_id") or vendor_of_model_name(name),
                   cpu_family=_int(fields.get("cpu family")), model=_int(fields.get("model")),
                   stepping=_int(fields.get("stepping")), model_name=name,
                   kernel=uname.release, hostname=uname.nodename)

    @classmethod
    def from_cpu_dict(cls, cpu: dict[str, Any], kernel: str | None = None,
                      hostname: str | None = None) -> HostId:
        """From a ``{"vendor_id", "family", "model", "stepping", "model_name"}`` block (profiles, .host.json)."""
        name = cpu.get("model_name")
        return cls(vendor_id=cpu.get("vendor_id") or vendor_of_model_name(name), cpu_family=_int(cpu.get("family")),
                   model=_int(cpu.get("model")), stepping=_int(cpu.get("stepping")), model_name=name,
                   kernel=kernel, hostname=hostname)

    @classmethod
    def from_host_json(cls, d: dict[str, Any]) -> HostId:
        """The machine a measurement's ``.host.json`` describes.

        A ``"cpu"`` block (as :meth:`cpu_dict` writes) is used when present; otherwise only the
        masked ``cpu_model`` name and the kernel are known, and the vendor is read from the name.
        """
        uname = str(d.get("uname") or "").split()
        kernel = d.get("kernel") or (uname[2] if len(uname) > 2 else None)
        hostname = uname[1] if len(uname) > 1 else None
        if isinstance(d.get("cpu"), dict):
            cpu = dict(d["cpu"])
            cpu.setdefault("model_name", d.get("cpu_model"))
            return cls.from_cpu_dict(cpu, kernel=kernel, hostname=hostname)
        name = d.get("cpu_model")
        return cls(vendor_id=vendor_of_model_name(name), model_name=name, kernel=kernel, hostname=hostname)

    def cpu_dict(self) -> dict[str, Any]:
        """The CPU block a profile (and a future .host.json) records."""
        return {"vendor_id": self.vendor_id, "family": self.cpu_family, "model": self.model,
                "stepping": self.stepping, "model_name": self.model_name}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def kernel_tree(self) -> str:
        return kernel_build(self.kernel)[0]

    @property
    def kernel_build(self) -> int | None:
        return kernel_build(self.kernel)[1]

    def same_cpu(self, other: HostId, *, stepping: bool = True) -> bool:
        """Vendor, family, model (and stepping) all known and equal."""
        keys = ["vendor_id", "cpu_family", "model"] + (["stepping"] if stepping else [])
        return all(getattr(self, k) is not None and getattr(self, k) == getattr(other, k) for k in keys)

    def label(self) -> str:
        """``AuthenticAMD 25/17/1, 6.18.44-fc-v1300`` (``?`` for what is unknown)."""
        fms = "/".join("?" if v is None else str(v) for v in (self.cpu_family, self.model, self.stepping))
        return f"{self.vendor_id or 'unknown vendor'} {fms}, {self.kernel or 'unknown kernel'}"
