//! The `headers_setter` extension through the real binary: a Tern agent
//! keeps each sender's tenant header (`include_metadata: true`), batches
//! the requests of several tenants together, and its `otlp_grpc` exporter
//! sends each tenant's spans with that tenant's header (plus a bearer
//! token from `additional_auth`) to a Tern gateway, which requires the
//! token, keeps the header the same way and forwards it with its own
//! `headers_setter` to an OTLP/HTTP backend. Every span reaches the
//! backend under its own tenant's header; spans sent without one get the
//! `default_value`.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tern_e2e::{Backend, HttpConn, Step, Tern};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_forwards_each_tenants_header_through_a_gateway() {
    let backend = Backend::start(vec![], Step::status(200)).await;
    let gateway = format!(
        r#"
extensions:
  bearertokenauth:
    token: agent-token
  headers_setter:
    headers:
      - {{key: X-Tenant, from_context: x-tenant}}
receivers:
  otlp:
    protocols:
      grpc:
        include_metadata: true
        auth: {{authenticator: bearertokenauth}}
processors:
  batch:
    timeout: 300ms
exporters:
  otlp_http:
    endpoint: http://127.0.0.1:{port}
    compression: none
    auth: {{authenticator: headers_setter}}
service:
  extensions: [health_check, bearertokenauth, headers_setter]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp_http]
"#,
        port = backend.port
    );
    let mut gw = Tern::start(&gateway);
    let agent = format!(
        r#"
extensions:
  bearertokenauth:
    token: agent-token
  headers_setter:
    additional_auth: bearertokenauth
    headers:
      - {{key: x-tenant, from_context: x-tenant, default_value: unknown}}
receivers:
  otlp:
    protocols:
      http:
        include_metadata: true
processors:
  batch:
    timeout: 500ms
exporters:
  otlp_grpc:
    endpoint: 127.0.0.1:{grpc}
    tls: {{insecure: true}}
    auth: {{authenticator: headers_setter}}
service:
  extensions: [health_check, bearertokenauth, headers_setter]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp_grpc]
"#,
        grpc = gw.grpc
    );
    let mut up = Tern::start(&agent);

    // Four senders within one batch window of the agent.
    let mut http = HttpConn::connect(up.http).await;
    let proto = ("content-type", "application/x-protobuf");
    let sent: [(u32, Option<&str>); 4] = [
        (1, Some("acme")),
        (2, Some("beta")),
        (3, Some("acme")),
        (4, None),
    ];
    for (tag, tenant) in sent {
        let mut headers = vec![proto];
        if let Some(t) = tenant {
            headers.push(("x-tenant", t));
        }
        let r = http
            .send(
                "POST",
                "/v1/traces",
                &headers,
                spans(tag, 2).encode_to_vec(),
            )
            .await;
        assert_eq!(r.status, 200);
    }

    // Each span, by the tenant header of the request that carried it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let tenant_of = loop {
        let mut tenant_of = BTreeMap::new();
        for r in backend.received() {
            let tenant = r
                .headers
                .get("x-tenant")
                .map(|v| v.to_str().unwrap().to_string());
            let req = ExportTraceServiceRequest::decode(r.body).unwrap();
            for rs in req.resource_spans {
                for ss in rs.scope_spans {
                    for s in ss.spans {
                        tenant_of.insert(s.name, tenant.clone());
                    }
                }
            }
        }
        if tenant_of.len() == 8 || Instant::now() > deadline {
            break tenant_of;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let logs = (gw.logs(), up.logs());
    assert!(up.stop().success());
    assert!(gw.stop().success());
    let expected: BTreeMap<String, Option<String>> = sent
        .iter()
        .flat_map(|(tag, tenant)| {
            (0..2).map(move |i| {
                (
                    format!("tool.call {tag}/{i}"),
                    Some(tenant.unwrap_or("unknown").to_string()),
                )
            })
        })
        .collect();
    assert_eq!(tenant_of, expected, "{logs:?}");
    assert!(
        backend
            .received()
            .iter()
            .all(|r| r.headers.get("authorization").is_none()),
        "the agent's token stays between agent and gateway"
    );
}
