"""`python app.py` as a child process: start it, time it to /healthz 200, read its peak RSS, stop it;
and the floor it is held against, a fresh interpreter importing what the app needs."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
IMPORT_FLOOR = "import gradio, sentence_transformers, faiss"
START_TIMEOUT = 600.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    """`python app.py` on a free loopback port; started() returns seconds to /healthz 200."""

    def __init__(self, data: Path, index_dir: Path, log: Path) -> None:
        self.data, self.index_dir, self.log_path = data, index_dir, log
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> float:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("QA_AUTH", "QA_INDEX_DIR")}
        cmd = [sys.executable, "app.py", "--data", str(self.data), "--index-dir", str(self.index_dir),
               "--host", "127.0.0.1", "--port", str(self.port)]  # fmt: skip
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(cmd, cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT)
        while True:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"app.py exited with {self.proc.returncode}:\n{tail}")
            if time.perf_counter() - t0 > START_TIMEOUT:
                raise RuntimeError(f"app.py not healthy after {START_TIMEOUT:.0f} s")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/healthz")
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    return time.perf_counter() - t0
            except OSError:
                pass
            time.sleep(0.05)

    def peak_rss(self) -> int:
        """VmHWM of the app process, in bytes."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM in /proc status")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(15)


def import_floor() -> tuple[float, float]:
    """Seconds for a fresh interpreter to import what the app needs, in the app's environment:
    (until the imports are done, as the app's start-up is timed until it answers; until it has
    exited, which adds the interpreter's teardown)."""
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    t0 = time.perf_counter()
    code = f"{IMPORT_FLOOR}; print('imported', flush=True)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    imported = time.perf_counter() - t0
    proc.stdout.read()
    if proc.wait() != 0 or not line.startswith(b"imported"):
        raise RuntimeError(f"the import floor failed with exit code {proc.returncode}")
    return imported, time.perf_counter() - t0
