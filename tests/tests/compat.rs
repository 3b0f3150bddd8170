//! Real-world OpenTelemetry Collector configurations (tests/compat/, sources
//! in its README): each original is validated to record whether it runs on
//! Tern unchanged, and each reduced copy (only the components Tern has) is
//! validated, started with its ports moved to free ones, and probed: every
//! listener it declares answers.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tern_e2e::{free_port, http_request, tern_bin};

/// How a listener is checked once Tern runs.
#[derive(Clone, Copy)]
enum Probe {
    /// `GET path` answers 200.
    Get(u16, &'static str),
    /// An empty OTLP/JSON export to the signal's path is accepted (200).
    OtlpHttp(u16, &'static str),
    /// A TCP connection is accepted (gRPC).
    Connect(u16),
}

/// One corpus entry: its file name, whether the original validates as
/// written, the listeners to probe (by their original port), and settings
/// layered on top to move listeners that the file leaves at their default
/// address (`{PORT}` is replaced by that port's free stand-in).
struct Case {
    name: &'static str,
    runs_unchanged: bool,
    probes: &'static [Probe],
    defaults: &'static str,
}

const OTLP: &[Probe] = &[
    Probe::Connect(4317),
    Probe::OtlpHttp(4318, "/v1/traces"),
    Probe::Get(8888, "/metrics"),
];

const OTLP_ZPAGES: &[Probe] = &[
    Probe::Connect(4317),
    Probe::OtlpHttp(4318, "/v1/traces"),
    Probe::Get(8888, "/metrics"),
    Probe::Get(55679, "/debug/servicez"),
];

const OTLP_HEALTH: &[Probe] = &[
    Probe::Connect(4317),
    Probe::OtlpHttp(4318, "/v1/traces"),
    Probe::Get(8888, "/metrics"),
    Probe::Get(13133, "/"),
];

const OTLP_GRPC: &[Probe] = &[Probe::Connect(4317), Probe::Get(8888, "/metrics")];

/// OTLP, health check, pprof and zPages (Uptrace's examples).
const OTLP_EXTENSIONS: &[Probe] = &[
    Probe::Connect(4317),
    Probe::OtlpHttp(4318, "/v1/traces"),
    Probe::Get(8888, "/metrics"),
    Probe::Get(13133, "/"),
    Probe::Get(1777, "/debug/pprof/"),
    Probe::Get(55679, "/debug/servicez"),
];

/// Moves both OTLP protocols when the file leaves them at their defaults.
const OTLP_DEFAULTS: &str = "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:{4317}\n      http:\n        endpoint: 127.0.0.1:{4318}\n";

/// As [`OTLP_DEFAULTS`], plus the health check.
const OTLP_HEALTH_DEFAULTS: &str = "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:{4317}\n      http:\n        endpoint: 127.0.0.1:{4318}\nextensions:\n  health_check:\n    endpoint: 127.0.0.1:{13133}\n";

/// Moves the OTLP/gRPC protocol when the file leaves it at its default.
const OTLP_GRPC_DEFAULTS: &str =
    "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:{4317}\n";

const CASES: &[Case] = &[
    Case {
        name: "collector-local.yaml",
        runs_unchanged: true,
        probes: OTLP_ZPAGES,
        defaults: "",
    },
    Case {
        name: "collector-k8s-agent.yaml",
        runs_unchanged: true,
        probes: OTLP_ZPAGES,
        defaults: "extensions:\n  zpages:\n    endpoint: 127.0.0.1:{55679}\n",
    },
    Case {
        name: "collector-k8s-gateway.yaml",
        runs_unchanged: true,
        probes: OTLP_ZPAGES,
        defaults: "extensions:\n  zpages:\n    endpoint: 127.0.0.1:{55679}\n",
    },
    Case {
        name: "helm-deployment-otlp-traces.yaml",
        runs_unchanged: true,
        probes: &[
            Probe::Connect(4317),
            Probe::OtlpHttp(4318, "/v1/traces"),
            Probe::Get(8888, "/metrics"),
            Probe::Get(13133, "/"),
        ],
        defaults: "",
    },
    Case {
        name: "helm-deployment-only.yaml",
        runs_unchanged: false,
        probes: &[
            Probe::Connect(4317),
            Probe::OtlpHttp(4318, "/v1/traces"),
            Probe::Get(8888, "/metrics"),
            Probe::Get(13133, "/"),
        ],
        defaults: "",
    },
    Case {
        name: "demo-otelcol-config.yaml",
        runs_unchanged: false,
        probes: OTLP,
        defaults: "",
    },
    Case {
        name: "contrib-examples-demo.yaml",
        runs_unchanged: false,
        probes: &[
            Probe::Connect(4317),
            Probe::Get(8888, "/metrics"),
            Probe::Get(8889, "/metrics"),
            Probe::Get(13133, "/"),
            Probe::Get(1888, "/debug/pprof/"),
            Probe::Get(55679, "/debug/pipelinez"),
        ],
        defaults: "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:{4317}\nextensions:\n  health_check:\n    endpoint: 127.0.0.1:{13133}\n",
    },
    Case {
        name: "grafana-lgtm.yaml",
        runs_unchanged: false,
        probes: OTLP,
        defaults: "",
    },
    Case {
        name: "grafana-lgtm-export-http.yaml",
        runs_unchanged: false,
        probes: OTLP,
        defaults: "",
    },
    Case {
        name: "jaeger-monitor.yaml",
        runs_unchanged: false,
        probes: &[
            Probe::Connect(65535),
            Probe::Get(8888, "/metrics"),
            Probe::Get(8889, "/metrics"),
        ],
        defaults: "",
    },
    Case {
        name: "adot-ecs-amp.yaml",
        runs_unchanged: false,
        probes: &[
            Probe::Connect(4317),
            Probe::OtlpHttp(4318, "/v1/metrics"),
            Probe::Get(8888, "/metrics"),
            Probe::Get(13133, "/"),
        ],
        defaults: "extensions:\n  health_check:\n    endpoint: 127.0.0.1:{13133}\n",
    },
    Case {
        name: "grafana-lgtm-export-http-auth.yaml",
        runs_unchanged: false,
        probes: OTLP,
        defaults: "",
    },
    Case {
        name: "grafana-lgtm-grafana-cloud.yaml",
        runs_unchanged: false,
        probes: OTLP,
        defaults: "",
    },
    Case {
        name: "grafana-lgtm-k8s-json-logging-ecs.yaml",
        runs_unchanged: false,
        probes: OTLP,
        defaults: "",
    },
    Case {
        name: "grafana-lgtm-k8s-json-logging-logback.yaml",
        runs_unchanged: false,
        probes: OTLP,
        defaults: "",
    },
    Case {
        name: "grafana-lgtm-k8s-json-logging-otlp.yaml",
        runs_unchanged: false,
        probes: OTLP,
        defaults: "",
    },
    Case {
        name: "grafana-lgtm-local-and-remote.yaml",
        runs_unchanged: false,
        probes: OTLP,
        defaults: "",
    },
    Case {
        name: "helm-daemonset-and-deployment-agent.yaml",
        runs_unchanged: false,
        probes: OTLP_HEALTH,
        defaults: "",
    },
    Case {
        name: "helm-daemonset-annotation-discovery-agent.yaml",
        runs_unchanged: false,
        probes: OTLP_HEALTH,
        defaults: "",
    },
    Case {
        name: "helm-daemonset-cluster-metrics-agent.yaml",
        runs_unchanged: false,
        probes: OTLP_HEALTH,
        defaults: "",
    },
    Case {
        name: "helm-daemonset-collector-logs-agent.yaml",
        runs_unchanged: false,
        probes: OTLP_HEALTH,
        defaults: "",
    },
    Case {
        name: "helm-daemonset-hostmetrics-agent.yaml",
        runs_unchanged: false,
        probes: OTLP_HEALTH,
        defaults: "",
    },
    Case {
        name: "helm-daemonset-kubernetes-objects-agent.yaml",
        runs_unchanged: false,
        probes: OTLP_HEALTH,
        defaults: "",
    },
    Case {
        name: "helm-daemonset-resource-detection-agent.yaml",
        runs_unchanged: false,
        probes: OTLP_HEALTH,
        defaults: "",
    },
    Case {
        name: "helm-demo-chart-agent.yaml",
        runs_unchanged: false,
        probes: OTLP_HEALTH,
        defaults: "",
    },
    Case {
        name: "helm-deployment-cluster-metrics.yaml",
        runs_unchanged: false,
        probes: OTLP_HEALTH,
        defaults: "",
    },
    Case {
        name: "helm-internal-telemetry-otlp.yaml",
        runs_unchanged: false,
        probes: OTLP_HEALTH,
        defaults: "",
    },
    Case {
        name: "helm-kubernetes-attributes.yaml",
        runs_unchanged: false,
        probes: OTLP_HEALTH,
        defaults: "",
    },
    Case {
        name: "jaeger-monitor-connector.yaml",
        runs_unchanged: false,
        probes: OTLP,
        defaults: OTLP_GRPC_DEFAULTS,
    },
    Case {
        name: "kube-stack-default-daemon.yaml",
        runs_unchanged: false,
        probes: OTLP,
        defaults: "",
    },
    Case {
        name: "kube-stack-multicollector-agent.yaml",
        runs_unchanged: false,
        probes: OTLP_GRPC,
        defaults: "",
    },
    Case {
        name: "kube-stack-multicollector-gateway.yaml",
        runs_unchanged: false,
        probes: OTLP_GRPC,
        defaults: "",
    },
    Case {
        name: "kube-stack-multicollector-ingress.yaml",
        runs_unchanged: true,
        probes: &[
            Probe::OtlpHttp(4318, "/v1/logs"),
            Probe::Get(8888, "/metrics"),
        ],
        defaults: "",
    },
    Case {
        name: "kube-stack-prometheus-otel-daemon.yaml",
        runs_unchanged: false,
        probes: OTLP,
        defaults: "",
    },
    Case {
        name: "operator-e2e-internal-metrics.yaml",
        runs_unchanged: true,
        probes: OTLP,
        defaults: OTLP_DEFAULTS,
    },
    Case {
        name: "operator-sample-sidecar.yaml",
        runs_unchanged: true,
        probes: OTLP,
        defaults: OTLP_DEFAULTS,
    },
    Case {
        name: "operator-sample-v1beta1.yaml",
        runs_unchanged: true,
        probes: OTLP,
        defaults: OTLP_DEFAULTS,
    },
    Case {
        name: "otel-io-blog-logs-yoda.yaml",
        runs_unchanged: true,
        probes: OTLP_GRPC,
        defaults: OTLP_GRPC_DEFAULTS,
    },
    Case {
        name: "uptrace-config.yaml",
        runs_unchanged: false,
        probes: OTLP_EXTENSIONS,
        defaults: OTLP_HEALTH_DEFAULTS,
    },
    Case {
        name: "uptrace-example-docker.yaml",
        runs_unchanged: false,
        probes: OTLP_EXTENSIONS,
        defaults: OTLP_HEALTH_DEFAULTS,
    },
    Case {
        name: "uptrace-example-kvrocks.yaml",
        runs_unchanged: false,
        probes: OTLP_EXTENSIONS,
        defaults: OTLP_HEALTH_DEFAULTS,
    },
    Case {
        name: "uptrace-example-redis-enterprise.yaml",
        runs_unchanged: false,
        probes: OTLP_EXTENSIONS,
        defaults: OTLP_HEALTH_DEFAULTS,
    },
];

/// The ports the corpus listens on; each gets a free stand-in per run.
const PORTS: &[u16] = &[1777, 1888, 4317, 4318, 8888, 8889, 13133, 55679, 65535];

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("compat")
}

/// The environment the configs expect (Kubernetes pod IP, the Helm chart's
/// downward-API variables, the demo's variables, with ports taken from
/// `ports`, the Amazon Managed Prometheus endpoint of ADOT's ECS config and
/// the Grafana Cloud zone of Grafana's LGTM image).
fn env(command: &mut Command, ports: &BTreeMap<u16, u16>) {
    command
        .env("MY_POD_IP", "127.0.0.1")
        .env("OTEL_K8S_NODE_NAME", "node-1")
        .env("OTEL_K8S_NAMESPACE", "default")
        .env("OTEL_K8S_NODE_IP", "10.0.0.1")
        .env("OTEL_K8S_POD_NAME", "collector-0")
        .env("OTEL_K8S_POD_IP", "127.0.0.1")
        .env("OTEL_COLLECTOR_HOST", "127.0.0.1")
        .env("OTEL_COLLECTOR_PORT_GRPC", ports[&4317].to_string())
        .env("OTEL_COLLECTOR_PORT_HTTP", ports[&4318].to_string())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
        .env(
            "AWS_PROMETHEUS_ENDPOINT",
            "http://127.0.0.1:1/api/v1/remote_write",
        )
        .env("GRAFANA_CLOUD_ZONE", "prod-us-east-0");
}

fn validate(path: &Path, ports: &BTreeMap<u16, u16>) -> (bool, String) {
    let mut command = Command::new(tern_bin());
    command.arg("validate").arg("--config").arg(path);
    env(&mut command, ports);
    let out = command.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `text` with every `:PORT` and `port: PORT` of the corpus ports moved.
/// Each is first marked `{PORT}` (the form `defaults` uses), then all marks
/// are replaced, so a stand-in never gets moved again.
fn move_ports(text: &str, ports: &BTreeMap<u16, u16>) -> String {
    let mut out = text.to_string();
    for from in ports.keys() {
        out = out
            .replace(&format!(":{from}"), &format!(":{{{from}}}"))
            .replace(&format!("port: {from}"), &format!("port: {{{from}}}"));
    }
    for (from, to) in ports {
        out = out.replace(&format!("{{{from}}}"), &to.to_string());
    }
    out
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_listening(port: u16, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        let exited = child.try_wait().unwrap();
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "nothing listens on {port} (exit: {exited:?}); log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn start_and_probe(case: &Case, ports: &BTreeMap<u16, u16>) {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(corpus().join("reduced").join(case.name)).unwrap();
    let config = dir.path().join(case.name);
    std::fs::write(&config, move_ports(&text, ports)).unwrap();
    // Self-metrics default to localhost:8888: move them too, unless the
    // file sets the (deprecated) `address`, which `move_ports` moved.
    let readers = if text.contains("address: ':8888'") {
        String::new()
    } else {
        format!(
            "service:\n  telemetry:\n    metrics:\n      readers:\n        - pull:\n            exporter:\n              prometheus:\n                host: 127.0.0.1\n                port: {}\n",
            ports[&8888]
        )
    };
    let layer = format!("{}{readers}", move_ports(case.defaults, ports));
    let layer_path = dir.path().join("ports.yaml");
    std::fs::write(&layer_path, layer).unwrap();
    let log = dir.path().join("tern.log");
    let mut command = Command::new(tern_bin());
    command
        .arg("--config")
        .arg(&config)
        .arg("--config")
        .arg(&layer_path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    env(&mut command, ports);
    let mut tern = Running(command.spawn().unwrap());
    for probe in case.probes {
        let (Probe::Get(p, _) | Probe::OtlpHttp(p, _) | Probe::Connect(p)) = *probe;
        let port = ports[&p];
        wait_listening(port, &mut tern.0, &log).await;
        let status = match *probe {
            Probe::Connect(_) => continue,
            Probe::Get(_, path) => http_request(port, "GET", path, &[], Vec::new()).await,
            Probe::OtlpHttp(_, path) => {
                let json = [("content-type", "application/json")];
                http_request(port, "POST", path, &json, b"{}".to_vec()).await
            }
        }
        .status;
        assert_eq!(status, 200, "{}: port {p} answered {status}", case.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_world_configs_validate_and_serve_after_reduction() {
    let mut names: Vec<String> = std::fs::read_dir(corpus().join("reduced"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut listed: Vec<&str> = CASES.iter().map(|c| c.name).collect();
    listed.sort_unstable();
    assert_eq!(
        names, listed,
        "every corpus file has a case, and only those"
    );

    for case in CASES {
        let ports: BTreeMap<u16, u16> = PORTS.iter().map(|&p| (p, free_port())).collect();
        let (ok, stderr) = validate(&corpus().join("original").join(case.name), &ports);
        assert_eq!(
            ok, case.runs_unchanged,
            "{}: the original validates: {ok}\n{stderr}",
            case.name
        );
        let (ok, stderr) = validate(&corpus().join("reduced").join(case.name), &ports);
        assert!(
            ok,
            "{}: reduced copy does not validate:\n{stderr}",
            case.name
        );
        start_and_probe(case, &ports).await;
    }
    let unchanged = CASES.iter().filter(|c| c.runs_unchanged).count();
    // docs/configuration.md reports these figures.
    assert_eq!((unchanged, CASES.len()), (9, 42));
}
