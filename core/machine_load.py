"""How busy the machine was while Kiln timed something.

A speed figure taken while another process held a core is not this build's speed, and a
matmul peak taken under load makes every later "% of peak" wrong (cached fp32 peaks of
66-135 GFLOP/s against 321-330 quiet made Kiln print 338%). So every timed stretch is
measured with a :class:`LoadMeter`: the load average, the hypervisor's steal, and the CPU
that *other* processes used meanwhile (all CPU time from ``/proc/stat`` less this process
and its children's), recorded beside the figure and used to refuse a busy peak.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

import psutil

BUSY_OTHER_CORES = 0.25
"""Other processes using more than a quarter of a core make a timing suspect."""
BUSY_STEAL_PCT = 5.0


@dataclass(frozen=True)
class Load:
    """The machine's load over one timed stretch."""

    seconds: float
    loadavg_1m: float
    steal_pct: float
    """Share of the machine's CPU time the hypervisor gave to other guests."""
    other_cores: float
    """Cores' worth of CPU used by processes other than Kiln's own, on average."""
    cores: int

    @property
    def busy(self) -> str | None:
        """Why timings taken meanwhile are suspect, or None on a quiet machine."""
        reasons = []
        if self.other_cores > BUSY_OTHER_CORES:
            reasons.append(f"other processes used {self.other_cores:.2f} of {self.cores} cores")
        if self.steal_pct > BUSY_STEAL_PCT:
            reasons.append(f"the hypervisor stole {self.steal_pct:.0f}% of the CPU")
        return "; ".join(reasons) or None

    def to_dict(self) -> dict[str, object]:
        return asdict(self) | {"busy": self.busy}


def _cpu_jiffies() -> tuple[float, float, float]:
    """(busy, steal, total) seconds of CPU time since boot, over all cores."""
    with open("/proc/stat", encoding="ascii") as fh:
        fields = [float(v) for v in fh.readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    steal = fields[7] if len(fields) > 7 else 0.0
    # guest time is already counted in user/nice: leave fields 8 and 9 out of the total.
    total = sum(fields[:8])
    return (total - idle - steal) / tick, steal / tick, total / tick


def _own_cpu() -> float:
    """CPU seconds of this process and its (waited and live) children."""
    me = psutil.Process()
    times = me.cpu_times()
    spent = times.user + times.system + times.children_user + times.children_system
    for child in me.children(recursive=True):
        try:
            t = child.cpu_times()
        except psutil.Error:
            continue
        spent += t.user + t.system
    return spent


class LoadMeter:
    """Started before a timed stretch, read after it (about 0.1 ms each way)."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._available = os.path.exists("/proc/stat")
        self._cpu = _cpu_jiffies() if self._available else (0.0, 0.0, 0.0)
        self._own = _own_cpu()

    def read(self) -> Load:
        seconds = max(time.perf_counter() - self._start, 1e-9)
        cores = psutil.cpu_count() or 1
        loadavg = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        if not self._available:
            return Load(seconds, loadavg, 0.0, 0.0, cores)
        busy, steal, total = (b - a for b, a in zip(_cpu_jiffies(), self._cpu, strict=True))
        own = _own_cpu() - self._own
        other = max(0.0, busy - own) / seconds
        steal_pct = 100.0 * steal / total if total > 0 else 0.0
        return Load(round(seconds, 3), loadavg, round(steal_pct, 2), round(other, 3), cores)
