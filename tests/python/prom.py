"""A real Prometheus server for the tests: started on 127.0.0.1 with a
temporary data directory, queried through its HTTP API."""

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

from conftest import free_port, wait_ready


class Prometheus:
    def __init__(self, tmp, scrape_target=None, remote_write=False):
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not installed (tests/run.sh installs the Debian package)")
        self.port = free_port()
        self.tmp = tmp
        scrape = ""
        if scrape_target:
            scrape = (
                "scrape_configs:\n"
                "  - job_name: tern\n"
                "    scrape_interval: 1s\n"
                "    honor_labels: true\n"
                f"    static_configs:\n      - targets: ['{scrape_target}']\n"
            )
        config = tmp / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n" + scrape)
        args = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--enable-feature=native-histograms",
        ]
        if remote_write:
            args.append("--web.enable-remote-write-receiver")
        self.log = open(tmp / "prometheus.log", "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        wait_ready(
            f"http://127.0.0.1:{self.port}/-/ready",
            self.proc,
            60,
            lambda: "prometheus did not start:\n" + (tmp / "prometheus.log").read_text(),
        )

    @property
    def remote_write_url(self):
        return f"http://127.0.0.1:{self.port}/api/v1/write"

    def query(self, promql):
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_for(self, promql, check, timeout=40):
        """Polls `promql` until `check(result)` holds; returns the result."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = self.query(promql)
            if check(last):
                return last
            time.sleep(0.25)
        raise AssertionError(f"{promql}: condition never held; last result {last}\n" + (self.tmp / "prometheus.log").read_text()[-3000:])

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def value(result):
    """The single value of an instant-vector result."""
    assert len(result) == 1, result
    return float(result[0]["value"][1])
