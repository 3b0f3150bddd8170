"""Fixtures for the interop tests: run the real `tern` binary on free ports."""

import os
import pathlib
import signal
import subprocess
import time
import urllib.request

import pytest

import ports

ROOT = pathlib.Path(__file__).resolve().parents[2]


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free loopback port not handed out before in this run (see ports.py)."""
    return ports.free_port(_HANDED_OUT)


def wait_ready(url: str, proc: subprocess.Popen, seconds: float, failure) -> None:
    """Polls `url` until it answers 200; raises RuntimeError(failure()) if
    `proc` exits first or `seconds` pass."""
    deadline = time.time() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            raise RuntimeError(failure())
        time.sleep(0.05)


BASE_CONFIG = (ROOT / "tests" / "base-config.yaml").read_text()


class Tern:
    """`tern --config base.yaml --config tern.yaml`: the base sets up the
    OTLP receiver, health check and self-metrics on free ports; the test's
    file adds pipelines and may override anything."""

    def __init__(self, tmp: pathlib.Path, template: str):
        self.tmp = tmp
        self.grpc, self.http, self.health, self.metrics = (free_port() for _ in range(4))
        def fill(text):
            return (
                text.replace("{grpc}", str(self.grpc))
                .replace("{http}", str(self.http))
                .replace("{health}", str(self.health))
                .replace("{metrics}", str(self.metrics))
                .replace("{dir}", str(tmp))
            )

        base = tmp / "base.yaml"
        base.write_text(fill(BASE_CONFIG))
        path = tmp / "tern.yaml"
        path.write_text(fill(template))
        binary = os.environ.get("TERN_BIN", str(ROOT / "target" / "debug" / "tern"))
        self.log = open(tmp / "tern.log", "wb")
        self.proc = subprocess.Popen([binary, "--config", str(base), "--config", str(path)], stderr=self.log)
        wait_ready(
            f"http://127.0.0.1:{self.health}/",
            self.proc,
            30,
            lambda: "tern did not become healthy:\n" + self.logs(),
        )

    def logs(self) -> str:
        return (self.tmp / "tern.log").read_text(errors="replace")

    def self_metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5) as r:
            return r.read().decode()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.log.close()
        return code


@pytest.fixture
def tern_factory(tmp_path):
    started = []

    def start(template: str) -> Tern:
        t = Tern(tmp_path, template)
        started.append(t)
        return t

    yield start
    for t in started:
        if t.proc.poll() is None:
            t.proc.kill()
            t.proc.wait()
