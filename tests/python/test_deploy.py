"""Deployment artefacts checked with the real tools: the Dockerfile with
hadolint and its release binary run as a non-root user in an otherwise
empty root (or the image itself where a Docker engine runs), the kustomize
overlays rendered by kustomize, the Helm chart linted and rendered by Helm
in every mode and preset, every rendered manifest validated against the
Kubernetes schemas (kubernetes-validate, strict) and every rendered Tern
configuration by `tern validate`, the GitHub workflows with actionlint,
and the Dapr configuration's structure.

helm, kustomize and actionlint are built from their Go modules by
tests/tools/build-deploy-tools.sh (versions in tests/tools/deploy-tools.txt);
a test whose tool did not build is skipped with the tool, the version and
the build log named. Alone:

    tests/tools/build-deploy-tools.sh
    .venv/bin/python -m pytest -q tests/python/test_deploy.py
"""

import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import kubernetes_validate
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "tern"
TOOLS_DIR = pathlib.Path(
    os.environ.get("TERN_DEPLOY_TOOLS", pathlib.Path.home() / ".cache" / "tern-deploy-tools")
)
TARGET_DIR = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
# The Dockerfile's build command; the image's runtime stage copies its output.
RELEASE_BUILD = "cargo build --release --locked -p tern"
# The chart's minimum (Chart.yaml kubeVersion) and the newest schemas bundled.
KUBERNETES_VERSIONS = ["1.25", kubernetes_validate.utils.latest_version()]
# What the runtime base (distroless cc-debian12) provides beside the binary:
# glibc and libgcc.
DISTROLESS_CC_LIBS = {
    "linux-vdso.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libgcc_s.so.1",
}
NONROOT = 65532


# ---------------------------------------------------------------- helpers


def tool_versions() -> dict:
    """name -> (package, version) from tests/tools/deploy-tools.txt."""
    tools = {}
    for line in (ROOT / "tests" / "tools" / "deploy-tools.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, package, version = line.split()
            tools[name] = (package, version)
    return tools


def go_tool(name: str) -> str:
    """Path of a tool built by build-deploy-tools.sh; skips the test, naming
    the tool and its build log, when it is not there."""
    _, version = tool_versions()[name]
    path = TOOLS_DIR / f"{name}-{version}" / name
    if not path.is_file():
        pytest.skip(
            f"{name} {version} is not built: run tests/tools/build-deploy-tools.sh "
            f"(build log: {TOOLS_DIR / f'{name}-{version}.log'})"
        )
    return str(path)


def venv_tool(name: str) -> str:
    """A command installed by tests/python/requirements.txt into this venv."""
    path = pathlib.Path(sys.executable).parent / name
    assert path.is_file(), f"{name} missing from the venv: pip install -r tests/python/requirements.txt"
    return str(path)


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)


def documents(text: str) -> list:
    return [d for d in yaml.safe_load_all(text) if d]


def validate_schemas(docs: list) -> None:
    """Every manifest against the Kubernetes schemas, strictly (no unknown
    fields), at the oldest and newest supported versions. Prometheus
    Operator resources have no bundled schema: checked by the caller."""
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} invalid for Kubernetes {version}: {e.message} at {list(e.path)}")


def find(docs: list, kind: str, name: str = None) -> dict:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def kinds(docs: list) -> list:
    return sorted(d["kind"] for d in docs)


def workload(docs: list) -> dict:
    found = [d for d in docs if d["kind"] in ("DaemonSet", "Deployment", "StatefulSet")]
    assert len(found) == 1, kinds(docs)
    return found[0]


def container(docs: list) -> dict:
    (c,) = workload(docs)["spec"]["template"]["spec"]["containers"]
    return c


def tern_validate(tern: str, docs: list, tmp_path: pathlib.Path) -> dict:
    """Runs `tern validate` on the configuration in the ConfigMap the
    workload mounts at /etc/tern, with the environment its container gets
    (downward API values stood in for), and returns it parsed."""
    spec = workload(docs)["spec"]["template"]["spec"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == "config"]
    configmap = find(docs, "ConfigMap", volume["configMap"]["name"])
    c = container(docs)
    assert c["args"] == ["--config", "/etc/tern/config.yaml"]
    assert {"name": "config", "mountPath": "/etc/tern", "readOnly": True} in c["volumeMounts"]
    text = configmap["data"]["config.yaml"]
    path = tmp_path / f"{configmap['metadata']['name']}.yaml"
    path.write_text(text)
    env = {"PATH": os.environ["PATH"]}
    for var in c.get("env", []):
        env[var["name"]] = var.get("value", f"downward-api-{var['name'].lower()}")
    result = run([tern, "validate", "--config", str(path)], env=env)
    assert result.returncode == 0, f"tern validate refused {configmap['metadata']['name']}:\n{result.stderr}\n{text}"
    return yaml.safe_load(text)


def assert_hardened(docs: list) -> None:
    """Non-root, read-only root filesystem, no capabilities, probes on the
    health_check endpoint, memory limit set."""
    spec = workload(docs)["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == NONROOT
    c = container(docs)
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    (health,) = [p for p in c["ports"] if p["name"] == "health"]
    assert health["containerPort"] == 13133
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/", "port": "health"}, probe
    assert c["resources"]["limits"]["memory"]
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in c["env"]}
    assert env["K8S_NODE_NAME"] == "spec.nodeName"
    assert env["K8S_POD_IP"] == "status.podIP"


def assert_health_and_memory(config: dict) -> None:
    assert config["extensions"]["health_check"]["endpoint"] == "0.0.0.0:13133"
    limiter = config["processors"]["memory_limiter"]
    assert "limit_percentage" in limiter, "memory_limiter is sized from the container's limit"
    for pipeline in config["service"]["pipelines"].values():
        assert pipeline["processors"][0] == "memory_limiter"


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def release_tern() -> str:
    """The binary the image's runtime stage copies: the Dockerfile's build
    command, on the same target (x86_64 glibc, Debian 12 here and in the
    build stage)."""
    assert RELEASE_BUILD in (DEPLOY / "docker" / "Dockerfile").read_text()
    result = run(RELEASE_BUILD.split(), cwd=ROOT)
    assert result.returncode == 0, result.stderr[-4000:]
    return str(TARGET_DIR / "release" / "tern")


@pytest.fixture(scope="session")
def kustomize_build():
    kustomize = go_tool("kustomize")
    rendered = {}

    def build(overlay: str) -> list:
        if overlay not in rendered:
            result = run([kustomize, "build", str(DEPLOY / "kubernetes" / overlay)])
            assert result.returncode == 0, result.stderr
            rendered[overlay] = documents(result.stdout)
        return rendered[overlay]

    return build


@pytest.fixture(scope="session")
def helm():
    return go_tool("helm")


def helm_template(helm: str, *args: str, release: str = "tern", namespace: str = "observability") -> list:
    result = run([helm, "template", release, str(CHART), "--namespace", namespace, *args])
    assert result.returncode == 0, result.stderr
    return documents(result.stdout)


# ---------------------------------------------------------------- image


def test_dockerfile_passes_hadolint():
    result = run([venv_tool("hadolint"), "--no-color", str(DEPLOY / "docker" / "Dockerfile")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_pins_the_toolchain_and_runs_as_non_root():
    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text()
    channel = re.search(r'channel = "([^"]+)"', (ROOT / "rust-toolchain.toml").read_text()).group(1)
    assert f"ARG RUST_VERSION={channel}\n" in dockerfile
    assert "FROM rust:${RUST_VERSION}-slim-bookworm AS build" in dockerfile
    assert "FROM gcr.io/distroless/cc-debian12:nonroot\n" in dockerfile
    assert f"USER {NONROOT}:{NONROOT}\n" in dockerfile
    assert 'ENTRYPOINT ["/usr/bin/tern"]' in dockerfile
    assert 'CMD ["--config", "/etc/tern/config.yaml"]' in dockerfile
    exposed = {int(p) for p in re.search(r"^EXPOSE (.*)$", dockerfile, re.M).group(1).split()}
    config = yaml.safe_load((DEPLOY / "docker" / "config.yaml").read_text())
    listening = {
        int(config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].rsplit(":", 1)[1]),
        int(config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].rsplit(":", 1)[1]),
        int(config["exporters"]["prometheus"]["endpoint"].rsplit(":", 1)[1]),
        int(config["extensions"]["health_check"]["endpoint"].rsplit(":", 1)[1]),
        config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]["port"],
    }
    assert exposed == listening


def test_image_config_is_the_embedded_default_on_every_interface(release_tern, tmp_path):
    """deploy/docker/config.yaml is config/src/default.yaml with 0.0.0.0 for
    localhost, and Tern accepts it."""
    image = yaml.safe_load((DEPLOY / "docker" / "config.yaml").read_text())
    default = yaml.safe_load((ROOT / "config" / "src" / "default.yaml").read_text().replace("localhost", "0.0.0.0"))
    assert image == default
    result = run([release_tern, "validate", "--config", str(DEPLOY / "docker" / "config.yaml")])
    assert result.returncode == 0, result.stderr


def dockerignore_filter(paths: list) -> list:
    """The paths of `paths` that .dockerignore lets into the build context
    (Docker's rules: the last matching pattern wins, `!` re-includes, a
    pattern that matches a folder matches everything in it, `**` any number
    of folders)."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        for part in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
            regex += {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part))
        rules.append((keep, re.compile(f"^{regex}(/.*)?$")))
    kept = []
    for path in paths:
        included = True
        for keep, regex in rules:
            if regex.match(path):
                included = keep
        if included:
            kept.append(path)
    return kept


def test_dockerignore_sends_what_the_release_build_needs(tmp_path):
    tracked = run(["git", "ls-files"], cwd=ROOT).stdout.split()
    context = dockerignore_filter(tracked)
    needed = [
        p
        for p in tracked
        if p in ("Cargo.toml", "Cargo.lock", "rust-toolchain.toml", "deploy/docker/config.yaml")
        or p.split("/")[0] in ("collector", "config", "processors", "exporters")
    ]
    assert set(needed) <= set(context), sorted(set(needed) - set(context))
    assert not [p for p in context if p.startswith(("tests/python/", "docs/", ".github/", "deploy/helm/", "fuzz/"))]
    # The workspace loads from the context alone: every member's manifest
    # and the targets it declares (`cargo fetch` checks them, where
    # `cargo metadata` lets a missing bench file pass).
    for path in context:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    result = run(["cargo", "fetch", "--locked"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def ldd_libraries(binary: str) -> list:
    """(name, path) of every shared library the binary loads."""
    libs = []
    for line in run(["ldd", binary]).stdout.splitlines():
        parts = line.split()
        if "=>" in parts:
            name, path = parts[0], parts[2]
            libs.append((name, path if path.startswith("/") else None))
        elif parts and parts[0].startswith("/"):
            libs.append((pathlib.Path(parts[0]).name, parts[0]))
        elif parts:
            libs.append((parts[0], None))
    return libs


def children(pid: int) -> list:
    try:
        text = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def test_release_binary_serves_as_non_root_in_an_empty_root(release_tern, tmp_path):
    """What the image's runtime stage holds, and nothing else: the binary,
    the libraries the distroless cc base provides, the CA bundle and the
    image's config, run with chroot as uid 65532 in a network namespace of
    its own (so the image's fixed ports are free). It answers on its health
    endpoint and on OTLP/HTTP, listens on 0.0.0.0, and exits 0 on SIGTERM."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"):
        pytest.skip("needs root with unshare and nsenter (util-linux) for chroot into a network namespace")
    root = tmp_path / "root"
    libs = ldd_libraries(release_tern)
    unexpected = [name for name, _ in libs if name not in DISTROLESS_CC_LIBS]
    assert not unexpected, f"the binary needs libraries the runtime base lacks: {unexpected}"
    for _, path in libs:
        if path:
            (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, root / path.lstrip("/"))
    (root / "usr" / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy(release_tern, root / "usr" / "bin" / "tern")
    (root / "etc" / "ssl" / "certs").mkdir(parents=True)
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", root / "etc" / "ssl" / "certs" / "ca-certificates.crt")
    (root / "etc" / "tern").mkdir()
    shutil.copy(DEPLOY / "docker" / "config.yaml", root / "etc" / "tern" / "config.yaml")
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert not [f for f in files if pathlib.Path(f).name in ("sh", "bash", "busybox")]

    log = open(tmp_path / "tern.log", "wb")
    outer = subprocess.Popen(
        [
            "unshare", "--net", "--fork", "--kill-child", "--",
            "sh", "-c", 'ip link set lo up && exec chroot --userspec=65532:65532 "$0" /usr/bin/tern --config /etc/tern/config.yaml',
            str(root),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # unshare's child becomes tern (sh and chroot exec into it).
        deadline = time.time() + 30
        pid = None
        while time.time() < deadline and outer.poll() is None:
            kids = children(outer.pid)
            if kids and pathlib.Path(f"/proc/{kids[0]}/exe").resolve().name == "tern":
                pid = kids[0]
                break
            time.sleep(0.05)
        assert pid, "tern did not start:\n" + (tmp_path / "tern.log").read_text(errors="replace")

        probe = (
            "import sys, time, urllib.request\n"
            "deadline = time.time() + 30\n"
            "while True:\n"
            "    try:\n"
            "        with urllib.request.urlopen('http://127.0.0.1:13133/', timeout=1) as r:\n"
            "            print(r.status, r.read().decode()); break\n"
            "    except OSError:\n"
            "        if time.time() > deadline: raise\n"
            "        time.sleep(0.05)\n"
            "req = urllib.request.Request('http://127.0.0.1:4318/v1/traces', data=b'{}',\n"
            "    headers={'Content-Type': 'application/json'})\n"
            "with urllib.request.urlopen(req, timeout=5) as r:\n"
            "    print(r.status)\n"
            "print(open('/proc/net/tcp').read())\n"
        )
        result = run(["nsenter", f"--net=/proc/{pid}/ns/net", "--", sys.executable, "-c", probe])
        assert result.returncode == 0, result.stderr + (tmp_path / "tern.log").read_text(errors="replace")
        lines = result.stdout.splitlines()
        assert lines[0] == '200 {"status":"Server available"}', lines[0]
        assert lines[1] == "200", lines[1]
        # Listening sockets (state 0A) of the namespace: all on 0.0.0.0.
        listening = {
            int(fields[1].split(":")[1], 16)
            for fields in (line.split() for line in lines[2:])
            if len(fields) > 3 and fields[3] == "0A" and fields[1].startswith("00000000:")
        }
        assert {4317, 4318, 8888, 8889, 13133} <= listening, listening

        status = pathlib.Path(f"/proc/{pid}/status").read_text()
        uid = re.search(r"^Uid:\s+(\d+)\s+(\d+)", status, re.M)
        assert (int(uid.group(1)), int(uid.group(2))) == (NONROOT, NONROOT)
        assert pathlib.Path(f"/proc/{pid}/root").resolve() == root.resolve()

        os.kill(pid, signal.SIGTERM)
        assert outer.wait(timeout=30) == 0, (tmp_path / "tern.log").read_text(errors="replace")
    finally:
        if outer.poll() is None:
            outer.kill()
            outer.wait()
        log.close()


def docker_engine() -> bool:
    return shutil.which("docker") is not None and run(["docker", "info"]).returncode == 0


def test_image_builds_and_serves_where_a_docker_engine_runs(tmp_path):
    if not docker_engine():
        pytest.skip("no Docker engine here: the image is not built; the chroot test runs the binary its runtime stage copies")
    tag = "tern:deploy-test"
    result = run(["docker", "build", "-f", str(DEPLOY / "docker" / "Dockerfile"), "-t", tag, str(ROOT)])
    assert result.returncode == 0, result.stderr[-4000:]
    user = run(["docker", "image", "inspect", "-f", "{{.Config.User}}", tag]).stdout.strip()
    assert user == f"{NONROOT}:{NONROOT}"
    started = run(["docker", "run", "-d", "--rm", "-p", "127.0.0.1::13133", tag])
    assert started.returncode == 0, started.stderr
    container_id = started.stdout.strip()
    try:
        port = run(["docker", "port", container_id, "13133/tcp"]).stdout.split(":")[-1].strip()
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.time() < deadline, run(["docker", "logs", container_id]).stderr
                time.sleep(0.2)
    finally:
        run(["docker", "stop", container_id])


# ---------------------------------------------------------------- kustomize


def test_agent_overlay_renders_a_hardened_daemonset(kustomize_build, release_tern, tmp_path):
    docs = kustomize_build("agent")
    validate_schemas(docs)
    assert kinds(docs) == ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet", "Service", "ServiceAccount"]
    assert_hardened(docs)
    daemonset = workload(docs)
    assert daemonset["metadata"]["namespace"] == "observability"
    ports = {p["name"]: p for p in container(docs)["ports"]}
    assert ports["otlp-grpc"]["hostPort"] == 4317 and ports["otlp-http"]["hostPort"] == 4318
    assert find(docs, "Service")["spec"]["internalTrafficPolicy"] == "Local"
    # RBAC: read only, pods, namespaces and replicasets, bound to the pods' account.
    role = find(docs, "ClusterRole")
    granted = {(g, r): sorted(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert granted == {
        ("", "pods"): ["get", "list", "watch"],
        ("", "namespaces"): ["get", "list", "watch"],
        ("apps", "replicasets"): ["get", "list", "watch"],
    }
    binding = find(docs, "ClusterRoleBinding")
    account = daemonset["spec"]["template"]["spec"]["serviceAccountName"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "observability"}]
    assert daemonset["spec"]["template"]["spec"]["automountServiceAccountToken"] is True
    config = tern_validate(release_tern, docs, tmp_path)
    assert_health_and_memory(config)


def test_gateway_overlay_renders_a_scalable_deployment(kustomize_build, release_tern, tmp_path):
    docs = kustomize_build("gateway")
    validate_schemas(docs)
    assert kinds(docs) == [
        "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service", "Service", "ServiceAccount",
    ]
    assert_hardened(docs)
    deployment = workload(docs)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    headless = [d for d in docs if d["kind"] == "Service" and d["spec"].get("clusterIP") == "None"]
    assert len(headless) == 1
    for service in (d for d in docs if d["kind"] == "Service"):
        assert service["spec"]["selector"].items() <= pod_labels.items()
    assert find(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    hpa = find(docs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    anti = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    term = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= pod_labels.items()
    assert_health_and_memory(tern_validate(release_tern, docs, tmp_path))


def test_kubectl_apply_k_renders_the_same(kustomize_build):
    """`kubectl apply -k` (the command docs/deployment.md gives) renders the
    overlays with kubectl's own kustomize: the same manifests."""
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed: only the pinned kustomize renders the overlays")
    for overlay in ("agent", "gateway"):
        result = run(["kubectl", "kustomize", str(DEPLOY / "kubernetes" / overlay)])
        assert result.returncode == 0, result.stderr
        assert documents(result.stdout) == kustomize_build(overlay)


def test_agent_forwards_to_the_gateways_headless_service(kustomize_build, release_tern, tmp_path):
    agent = tern_validate(release_tern, kustomize_build("agent"), tmp_path)
    gateway = kustomize_build("gateway")
    (headless,) = [d for d in gateway if d["kind"] == "Service" and d["spec"].get("clusterIP") == "None"]
    (grpc,) = [p for p in headless["spec"]["ports"] if p["name"] == "otlp-grpc"]
    host = f"{headless['metadata']['name']}.{headless['metadata']['namespace']}.svc.cluster.local"
    exporter = agent["exporters"]["load_balancing/gateway"]
    assert exporter["resolver"]["dns"] == {"hostname": host, "port": str(grpc["port"])}
    for pipeline in agent["service"]["pipelines"].values():
        assert pipeline["exporters"] == ["load_balancing/gateway"]


# ---------------------------------------------------------------- helm

LOAD_BALANCING = [
    "--set", "presets.loadBalancing.enabled=true",
    "--set", "presets.loadBalancing.endpoint=tern-gateway-headless.observability.svc.cluster.local:4317",
]

HELM_CASES = {
    "daemonset": ["--set", "mode=daemonset"],
    "deployment": ["--set", "mode=deployment"],
    "statefulset": ["--set", "mode=statefulset"],
    "daemonset-agent-presets": ["--set", "mode=daemonset", "--set", "presets.kubernetesAttributes.enabled=true", *LOAD_BALANCING],
    "deployment-loadbalancing": ["--set", "mode=deployment", *LOAD_BALANCING],
    "deployment-scaled-monitored": [
        "--set", "mode=deployment",
        "--set", "autoscaling.enabled=true",
        "--set", "podDisruptionBudget.enabled=true",
        "--set", "serviceMonitor.enabled=true",
        "--set", "podMonitor.enabled=true",
    ],
    "statefulset-scaled": ["--set", "mode=statefulset", "--set", "autoscaling.enabled=true", "--set", "podDisruptionBudget.enabled=true"],
    "daemonset-host-network": ["--set", "mode=daemonset", "--set", "hostNetwork=true"],
}


@pytest.mark.parametrize("case", sorted(HELM_CASES))
def test_helm_lint(helm, case):
    result = run([helm, "lint", "--strict", str(CHART), *HELM_CASES[case]])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", sorted(HELM_CASES))
def test_helm_template_renders_valid_manifests_and_config(helm, release_tern, tmp_path, case):
    args = HELM_CASES[case]
    values = dict(a.split("=", 1) for a in args if "=" in a)
    mode = values["mode"]
    docs = helm_template(helm, *args)
    validate_schemas(docs)
    assert_hardened(docs)
    kind = {"daemonset": "DaemonSet", "deployment": "Deployment", "statefulset": "StatefulSet"}[mode]
    assert workload(docs)["kind"] == kind
    spec = workload(docs)["spec"]
    pod = spec["template"]
    assert spec["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert "checksum/config" in pod["metadata"]["annotations"]
    config = tern_validate(release_tern, docs, tmp_path)
    assert_health_and_memory(config)

    ports = {p["name"]: p for p in container(docs)["ports"]}
    host_ports = mode == "daemonset" and values.get("hostNetwork") != "true"
    assert ("hostPort" in ports["otlp-grpc"]) == host_ports
    assert pod["spec"].get("hostNetwork", False) == (values.get("hostNetwork") == "true")
    services = [d for d in docs if d["kind"] == "Service"]
    headless = [s for s in services if s["spec"].get("clusterIP") == "None"]
    assert len(headless) == (0 if mode == "daemonset" else 1)
    if mode == "statefulset":
        assert spec["serviceName"] == headless[0]["metadata"]["name"]
    (main,) = [s for s in services if s not in headless]
    assert main["spec"].get("internalTrafficPolicy") == ("Local" if mode == "daemonset" else None)

    attributes = values.get("presets.kubernetesAttributes.enabled") == "true"
    assert ("ClusterRole" in kinds(docs)) == attributes
    assert pod["spec"]["automountServiceAccountToken"] == attributes
    if attributes:
        binding = find(docs, "ClusterRoleBinding")
        assert binding["subjects"][0]["name"] == pod["spec"]["serviceAccountName"]

    exporters = sorted({e for p in config["service"]["pipelines"].values() for e in p["exporters"]})
    if values.get("presets.loadBalancing.enabled") == "true":
        assert exporters == ["load_balancing/gateway"]
        assert set(config["exporters"]) == {"load_balancing/gateway"}
        host, port = values["presets.loadBalancing.endpoint"].split(":")
        dns = config["exporters"]["load_balancing/gateway"]["resolver"]["dns"]
        assert dns == {"hostname": host, "port": port}
    else:
        assert exporters == ["debug"]

    autoscaled = values.get("autoscaling.enabled") == "true"
    assert ("replicas" in spec) == (mode != "daemonset" and not autoscaled)
    if autoscaled:
        target = find(docs, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == (kind, workload(docs)["metadata"]["name"])
    for monitor, endpoints in (("ServiceMonitor", "endpoints"), ("PodMonitor", "podMetricsEndpoints")):
        if values.get(f"{monitor[0].lower()}{monitor[1:]}.enabled") == "true":
            m = find(docs, monitor)
            assert m["apiVersion"] == "monitoring.coreos.com/v1"
            assert m["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
            assert m["spec"][endpoints] == [{"port": "metrics", "interval": "30s"}]
            assert "metrics" in ports
        else:
            assert monitor not in kinds(docs)


def test_helm_config_is_deep_merged_over_the_defaults(helm, release_tern, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "config": {
                    "processors": {"batch": {"timeout": "1s"}},
                    "exporters": {
                        "debug": None,
                        "otlp_http/backend": {"endpoint": "https://otlp.example.com", "compression": "gzip"},
                    },
                    "service": {
                        "pipelines": {
                            "traces": {"exporters": ["otlp_http/backend"]},
                            "metrics": {"exporters": ["otlp_http/backend"]},
                            "logs": {"exporters": ["otlp_http/backend"]},
                        }
                    },
                }
            }
        )
    )
    config = tern_validate(release_tern, helm_template(helm, "-f", str(values)), tmp_path)
    assert config["processors"]["batch"] == {"send_batch_size": 8192, "timeout": "1s"}
    assert config["processors"]["memory_limiter"]["limit_percentage"] == 75
    assert set(config["exporters"]) == {"otlp_http/backend"}
    assert config["service"]["pipelines"]["traces"] == {
        "receivers": ["otlp"],
        "processors": ["memory_limiter", "batch"],
        "exporters": ["otlp_http/backend"],
    }


def test_helm_load_balancing_preset_takes_exporter_settings_from_config(helm, release_tern, tmp_path):
    docs = helm_template(
        helm, "--set", "mode=daemonset", *LOAD_BALANCING,
        "--set", "presets.loadBalancing.compression=gzip",
        "--set", "presets.loadBalancing.routingKey=service",
        "--set", "config.exporters.load_balancing/gateway.protocol.otlp.sending_queue.queue_size=500",
        "--set", "config.exporters.load_balancing/gateway.protocol.otlp.timeout=3s",
    )
    exporter = tern_validate(release_tern, docs, tmp_path)["exporters"]["load_balancing/gateway"]
    assert exporter == {
        "routing_key": "service",
        "protocol": {
            "otlp": {
                "compression": "gzip",
                "tls": {"insecure": True},
                "retry_on_failure": {"max_elapsed_time": 0},
                "sending_queue": {"queue_size": 500},
                "timeout": "3s",
            }
        },
        "resolver": {
            "dns": {"hostname": "tern-gateway-headless.observability.svc.cluster.local", "port": "4317"}
        },
    }


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "presets.hostMetrics.enabled=true"], "presets.hostMetrics needs the hostmetrics receiver"),
        (["--set", "presets.loadBalancing.enabled=true"], "presets.loadBalancing.endpoint: host:port of the gateway"),
        (["--set", "mode=replicaset"], "at '/mode': value must be one of 'daemonset', 'deployment', 'statefulset'"),
        (["--set", "presets.loadBalancing.compression=brotli"], "at '/presets/loadBalancing/compression'"),
        (["--set", "unknownKey=1"], "additional properties 'unknownKey' not allowed"),
        (["--set", "ports.metrics.containerPort=0"], "at '/ports/metrics/containerPort'"),
        (["--set", "mode=statefulset", "--set", "headlessService.enabled=false"], "mode statefulset needs headlessService.enabled"),
        (["--set", "serviceMonitor.enabled=true", "--set", "service.enabled=false"], "serviceMonitor needs service.enabled"),
    ],
)
def test_helm_refuses_what_it_cannot_render(helm, args, message):
    result = run([helm, "template", "tern", str(CHART), *args])
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_helm_notes_say_how_to_send_and_what_presets_do_not_do_yet(helm):
    result = run(
        [helm, "install", "tern-agent", str(CHART), "--dry-run=client", "--namespace", "observability",
         "--set", "mode=daemonset", "--set", "presets.kubernetesAttributes.enabled=true", *LOAD_BALANCING]
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:\n", 1)[1]
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://$(NODE_IP):4317" in notes
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://tern-agent.observability.svc:4317" in notes
    assert "each trace to one pod" in notes
    assert "Tern has no k8sattributes processor yet" in notes
    result = run([helm, "install", "tern-gateway", str(CHART), "--dry-run=client", "--namespace", "observability"])
    assert result.returncode == 0, result.stderr
    assert (
        "presets.loadBalancing.endpoint=tern-gateway-headless.observability.svc.cluster.local:4317"
        in result.stdout.split("NOTES:\n", 1)[1]
    )


def test_deployment_doc_helm_commands_render(helm, release_tern, tmp_path):
    """Every `helm install` / `helm upgrade --install` in docs/deployment.md
    renders as written (with the chart path of this clone)."""
    text = (ROOT / "docs" / "deployment.md").read_text()
    commands = [
        c.replace("\\\n", " ")
        for block in re.findall(r"```sh\n(.*?)```", text, re.S)
        for c in re.split(r"(?<!\\)\n", block)
        if c.startswith("helm upgrade --install ") or c.startswith("helm install ")
    ]
    assert len(commands) >= 2, commands
    for command in commands:
        words = command.split()
        words = words[3:] if words[1] == "upgrade" else words[2:]
        release, chart, *args = words
        assert chart == "deploy/helm/tern", command
        args = [a for a in args if a not in ("--create-namespace", "--wait")]
        docs = helm_template(helm, *args, release=release, namespace="default")
        validate_schemas(docs)
        tern_validate(release_tern, docs, tmp_path)


# ---------------------------------------------------------------- workflows


def test_workflows_pass_actionlint():
    actionlint = go_tool("actionlint")
    workflows = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    assert len(workflows) == 2
    result = run([actionlint, "-no-color", *workflows], cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_run_the_suite_and_release_both_platforms():
    ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    steps = [s.get("run", "") for s in ci["jobs"]["test"]["steps"]]
    assert "bash .ci/run" in steps
    assert (ROOT / "deny.toml").is_file()
    assert any("cargo-deny-action" in s.get("uses", "") for s in ci["jobs"]["deny"]["steps"])
    helm_version = tool_versions()["helm"][1]
    for workflow in ("ci.yml", "release.yml"):
        text = (ROOT / ".github" / "workflows" / workflow).read_text()
        assert re.findall(r"setup-helm@v4\n\s+with:\n\s+version: (\S+)", text) != []
        assert set(re.findall(r"setup-helm@v4\n\s+with:\n\s+version: (\S+)", text)) == {helm_version}
    release = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    # PyYAML reads the key `on` as True.
    assert release[True]["push"]["tags"] == ["v*.*.*"]
    platforms = {m["platform"] for m in release["jobs"]["image"]["strategy"]["matrix"]["include"]}
    assert platforms == {"linux/amd64", "linux/arm64"}
    build = [s for s in release["jobs"]["image"]["steps"] if "build-push-action" in s.get("uses", "")][0]
    assert build["with"]["file"] == "deploy/docker/Dockerfile"
    assert release["env"]["IMAGE"].startswith("ghcr.io/")
    chart_steps = " ".join(s.get("run", "") for s in release["jobs"]["chart"]["steps"])
    assert "helm package deploy/helm/tern" in chart_steps and "helm push" in chart_steps


# ---------------------------------------------------------------- dapr


def test_dapr_configuration_sends_traces_to_the_agent(kustomize_build):
    """The fields Dapr documents for tracing (docs.dapr.io, "Configure Dapr
    to send distributed tracing data"), and an endpoint that is the agent's
    OTLP/gRPC Service port."""
    (config,) = documents((DEPLOY / "dapr" / "configuration.yaml").read_text())
    assert config["apiVersion"] == "dapr.io/v1alpha1"
    assert config["kind"] == "Configuration"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", config["metadata"]["name"])
    assert set(config["spec"]) == {"tracing"}
    tracing = config["spec"]["tracing"]
    assert set(tracing) <= {"samplingRate", "stdout", "otel", "zipkin"}
    assert isinstance(tracing["samplingRate"], str) and 0 < float(tracing["samplingRate"]) <= 1
    assert isinstance(tracing["stdout"], bool)
    otel = tracing["otel"]
    assert set(otel) == {"endpointAddress", "isSecure", "protocol"}
    assert isinstance(otel["isSecure"], bool)
    assert otel["protocol"] == "grpc"
    assert "://" not in otel["endpointAddress"], "gRPC takes host:port"
    host, port = otel["endpointAddress"].rsplit(":", 1)

    agent = kustomize_build("agent")
    service = find(agent, "Service")
    (grpc,) = [p for p in service["spec"]["ports"] if p["name"] == "otlp-grpc"]
    assert (host, int(port)) == (
        f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local",
        grpc["port"],
    )
    assert f"dapr.io/config: \"{config['metadata']['name']}\"" in (ROOT / "docs" / "dapr.md").read_text()
