//! gRPC health checking and server reflection on a real node.

mod support;

use concord_core::Policy;
use support::{Cluster, spec};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

async fn channel(addr: std::net::SocketAddr) -> tonic::transport::Channel {
    // Health and reflection need TLS, and no token.
    support::tls_channel(addr, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_says_serving_for_both_services() {
    let cluster = Cluster::start(&["us-east", "eu-west"], &[spec("hlcs", Policy::LwwHlc)]).await;
    let mut health = HealthClient::new(channel(cluster.addrs[0]).await);
    for service in ["concord.v1.Concord", "concord.v1.Peer", ""] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("check")
            .into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "{service:?}");
    }
    let err = health
        .check(HealthCheckRequest {
            service: "concord.v1.Nope".into(),
        })
        .await
        .expect_err("an unknown service");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    cluster.shutdown().await;
}

async fn reflect(
    client: &mut ServerReflectionClient<tonic::transport::Channel>,
    request: MessageRequest,
) -> Result<ServerReflectionResponse, tonic::Status> {
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![ServerReflectionRequest {
            host: String::new(),
            message_request: Some(request),
        }]))
        .await
        .expect("reflection")
        .into_inner();
    stream.message().await.map(|r| r.expect("one response"))
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_and_describes_both_services() {
    let cluster = Cluster::start(&["us-east", "eu-west"], &[spec("hlcs", Policy::LwwHlc)]).await;
    let mut client = ServerReflectionClient::new(channel(cluster.addrs[1]).await);

    let r = reflect(&mut client, MessageRequest::ListServices(String::new()))
        .await
        .expect("list services");
    let Some(MessageResponse::ListServicesResponse(list)) = r.message_response else {
        panic!("{r:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for want in [
        "concord.v1.Concord",
        "concord.v1.Peer",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }

    // The descriptor of each service is served, with its methods.
    for (symbol, methods) in [
        (
            "concord.v1.Concord",
            &["Put", "Get", "WriteMany", "Takeover"][..],
        ),
        ("concord.v1.Peer", &["Replicate", "Snapshot"][..]),
    ] {
        let r = reflect(
            &mut client,
            MessageRequest::FileContainingSymbol(symbol.into()),
        )
        .await
        .expect("a descriptor");
        let Some(MessageResponse::FileDescriptorResponse(files)) = r.message_response else {
            panic!("{symbol}: {r:?}");
        };
        assert!(!files.file_descriptor_proto.is_empty());
        let all: Vec<u8> = files.file_descriptor_proto.concat();
        for m in methods {
            assert!(contains(&all, m), "{symbol}.{m} in the descriptor");
        }
    }
    let err = reflect(
        &mut client,
        MessageRequest::FileContainingSymbol("concord.v1.Nope".into()),
    )
    .await
    .expect_err("an unknown symbol");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    cluster.shutdown().await;
}
