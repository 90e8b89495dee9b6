"""SageMaker's system monitor, in its file format: CPU per core (+ I/O wait), memory, disk I/O,
network and, when NVML is there, GPU utilisation and memory, as JSON lines in
`<profiler dir>/system/incremental/<YYYYMMDDHH>/<minute>.algo-1.json`.

The local backend runs it beside a job (as SageMaker's platform does); in the SageMaker
`client` debugger mode the training script runs it itself, under the checkpoint folder that
SageMaker syncs to S3, because no platform monitor runs without a ProfilerConfig.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

NODE_ID = "algo-1"
END_MARKER = "training_job_end.ts"


class SystemSampler(threading.Thread):
    """CPU per core (+ I/O wait), memory, disk I/O, network and, when NVML is there, GPU
    utilisation and memory, as JSON lines in system/incremental/<YYYYMMDDHH>/<minute>.algo-1.json."""

    def __init__(self, profiler_dir: Path, interval_s: float):
        super().__init__(daemon=True, name="dogbreed-system-sampler")
        self.dir, self.interval = profiler_dir / "system", interval_s
        self.stop_event = threading.Event()
        self._gpus = _nvml_handles()

    def run(self) -> None:
        import psutil

        psutil.cpu_percent(percpu=True)  # the first call only sets the baseline
        disk, net, last = psutil.disk_io_counters(), psutil.net_io_counters(), time.time()
        while not self.stop_event.wait(self.interval):
            now = time.time()
            dt = max(now - last, 1e-6)
            rows = []
            for i, pct in enumerate(psutil.cpu_percent(percpu=True)):
                rows.append(("cpu", f"cpu{i}", "CPUUtilization", pct))
            rows.append(("cpu", "cpu", "I/OWaitPercentage", getattr(psutil.cpu_times_percent(), "iowait", 0.0)))
            rows.append(("memory", "MemoryUsedPercent", "", psutil.virtual_memory().percent))
            d2, n2 = psutil.disk_io_counters(), psutil.net_io_counters()
            if disk and d2:
                ops = d2.read_count + d2.write_count - disk.read_count - disk.write_count
                rows += [("i/o", "IOPS", "", ops / dt),
                         ("i/o", "ReadThroughputInBytesPerSecond", "", (d2.read_bytes - disk.read_bytes) / dt),
                         ("i/o", "WriteThroughputInBytesPerSecond", "", (d2.write_bytes - disk.write_bytes) / dt)]
            if net and n2:
                rows += [("network", "ReceiveBytesPerSecond", "Algorithm", (n2.bytes_recv - net.bytes_recv) / dt),
                         ("network", "TransmitBytesPerSecond", "Algorithm", (n2.bytes_sent - net.bytes_sent) / dt)]
            for i, (util, mem) in enumerate(_gpu_readings(self._gpus)):
                rows += [("gpu", f"gpu{i}", "GPUUtilization", util), ("gpu", f"gpu{i}", "GPUMemoryUtilization", mem)]
            disk, net, last = d2, n2, now
            self._write(now, rows)

    def _write(self, now: float, rows) -> None:
        minute = int(now // 60 * 60)
        folder = self.dir / "incremental" / time.strftime("%Y%m%d%H", time.gmtime(now))
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"{minute:010d}.{NODE_ID}.json", "a") as fh:
            for typ, name, dim, value in rows:
                fh.write(json.dumps({"Type": typ, "Name": name, "Dimension": dim, "Value": round(float(value), 3),
                                     "NodeId": NODE_ID, "Timestamp": round(now, 3)}) + "\n")

    def stop(self) -> None:
        self.stop_event.set()
        self.join(5)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / END_MARKER).write_text(str(time.time()))


def _nvml_handles():
    try:
        import pynvml

        pynvml.nvmlInit()
        return [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception:  # no pynvml, no driver, no GPU: no GPU rows
        return []


def _gpu_readings(handles):
    if not handles:
        return []
    import pynvml

    out = []
    for h in handles:
        util, mem = pynvml.nvmlDeviceGetUtilizationRates(h), pynvml.nvmlDeviceGetMemoryInfo(h)
        out.append((util.gpu, 100.0 * mem.used / max(mem.total, 1)))
    return out


