//! Every service binary, started as a real process on a free loopback port: health, reflection,
//! UNIMPLEMENTED stubs, configuration errors, signals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use ktrdr_system_tests::{SERVICE_BINARIES, ServiceProcess, run_to_exit};
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn health_status(channel: Channel, service: &str) -> Result<ServingStatus, tonic::Status> {
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?;
    Ok(response.into_inner().status())
}

/// The services a server lists over reflection protocol `$version` (`v1` or `v1alpha`: the
/// same messages in two packages).
macro_rules! reflected_services {
    ($version:ident, $channel:expr) => {{
        use tonic_reflection::pb::$version::ServerReflectionRequest;
        use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;

        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = ServerReflectionClient::new($channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        match responses.message().await.unwrap().unwrap().message_response {
            Some(MessageResponse::ListServicesResponse(list)) => list
                .service
                .into_iter()
                .map(|s| s.name)
                .collect::<BTreeSet<String>>(),
            other => panic!("unexpected reflection answer {other:?}"),
        }
    }};
}

async fn reflection_v1_services(channel: Channel) -> BTreeSet<String> {
    reflected_services!(v1, channel)
}

async fn reflection_v1alpha_services(channel: Channel) -> BTreeSet<String> {
    reflected_services!(v1alpha, channel)
}

#[tokio::test]
async fn every_binary_serves_health_reflection_and_its_api_then_stops_on_sigterm() {
    for (binary, services) in SERVICE_BINARIES {
        // ib-sim's TWS socket on a free port, so parallel tests never collide on 4002; ib-host
        // pointed where no IB listens (port 1), so its API is NOT_SERVING until IB is there;
        // the gateway's backends pointed where nothing listens, so its APIs are NOT_SERVING.
        let env = [
            ("IB_SIM_ADDR", "127.0.0.1:0"),
            ("IB_PORT", "1"),
            ("IB_HOST_SERVICE_URL", "http://127.0.0.1:1"),
            ("DATA_SERVICE_URL", "http://127.0.0.1:1"),
            ("TRAINING_HOST_SERVICE_URL", "http://127.0.0.1:1"),
        ];
        let mut process = ServiceProcess::start(binary, &env).await;
        let channel = process.channel().await;

        assert_eq!(
            health_status(channel.clone(), "").await.unwrap(),
            ServingStatus::Serving,
            "{binary} overall health"
        );
        for service in *services {
            let want = if *service == "ktrdr.ib.v1.IbHostService" || *binary == "ktrdr-gateway" {
                ServingStatus::NotServing
            } else {
                ServingStatus::Serving
            };
            assert_eq!(
                health_status(channel.clone(), service).await.unwrap(),
                want,
                "{binary} health of {service}"
            );
        }
        let unknown = health_status(channel.clone(), "no.such.Service")
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), Code::NotFound, "{binary}");

        let mut expected: BTreeSet<String> = services.iter().map(|s| (*s).to_owned()).collect();
        expected.extend(
            [
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
            ]
            .map(String::from),
        );
        assert_eq!(
            reflection_v1_services(channel.clone()).await,
            expected,
            "{binary} reflection v1"
        );
        assert_eq!(
            reflection_v1alpha_services(channel.clone()).await,
            expected,
            "{binary} reflection v1alpha"
        );

        drop(channel);
        process.signal("TERM");
        let exit = process.wait().await;
        assert!(
            exit.success(),
            "{binary} exit after SIGTERM: {exit:?}\n{}",
            process.logs()
        );
        let logs = process.logs();
        assert!(
            logs.contains(&format!("{binary} stopped")),
            "{binary} logs:\n{logs}"
        );
        // Successful health checks log at debug level; the failed one above is logged.
        assert!(
            logs.contains("rpc /grpc.health.v1.Health/Check NotFound"),
            "{binary} logs one line per RPC:\n{logs}"
        );
    }
}

#[tokio::test]
async fn sigint_stops_a_binary_cleanly_too() {
    let mut process = ServiceProcess::start("ktrdr-data", &[]).await;
    process.signal("INT");
    assert!(process.wait().await.success(), "{}", process.logs());
    assert!(process.logs().contains("received SIGINT"));
}

#[tokio::test]
async fn on_sigterm_health_watchers_see_not_serving_and_open_streams_get_the_grace_period() {
    let mut process = ServiceProcess::start(
        "ktrdr-ib-sim",
        &[
            ("KTRDR_SHUTDOWN_GRACE_MS", "300"),
            ("IB_SIM_ADDR", "127.0.0.1:0"),
        ],
    )
    .await;
    let mut watch = HealthClient::new(process.channel().await)
        .watch(HealthCheckRequest {
            service: "ktrdr.ib.v1.IbSimService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);

    process.signal("TERM");
    let next = match watch.message().await {
        Ok(Some(next)) => next,
        other => {
            process.wait().await;
            panic!("watch after SIGTERM: {other:?}\n{}", process.logs())
        }
    };
    assert_eq!(next.status(), ServingStatus::NotServing);
    // The watch stream never ends by itself; the server must still exit after its grace period.
    assert!(process.wait().await.success(), "{}", process.logs());
    assert!(
        process.logs().contains("grace period of 300 ms over"),
        "{}",
        process.logs()
    );
}

#[tokio::test]
async fn a_bad_variable_stops_each_binary_with_exit_code_2_and_one_line_naming_it() {
    let cases = [
        ("ktrdr-gateway", "USE_DATA_SERVICE", "maybe"),
        (
            "ktrdr-gateway",
            "TRAINING_HOST_SERVICE_URL",
            "training-host:50053",
        ),
        ("ktrdr-data", "KTRDR_LOG_FORMAT", "xml"),
        ("ktrdr-ib-host", "IB_PORT", "0"),
        ("ktrdr-ib-host", "IB_CLIENT_ID", "first"),
        ("ktrdr-training-host", "KTRDR_MAX_CONCURRENT_TRAININGS", "0"),
        ("ktrdr-training-host", "DATA_SERVICE_URL", "data"),
        ("ktrdr-ib-sim", "IB_SIM_ADDR", "4002"),
        ("ktrdr-ib-sim", "KTRDR_LISTEN_ADDR", "localhost:50055"),
    ];
    for (binary, variable, value) in cases {
        let (status, stdout, stderr) = run_to_exit(binary, &[], &[(variable, value)]).await;
        assert_eq!(
            status.code(),
            Some(2),
            "{binary} {variable}={value}: {stderr}"
        );
        assert!(stdout.is_empty(), "{binary}: {stdout}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{binary} {variable}: {stderr}");
        assert!(
            lines[0].starts_with(&format!(
                "{binary}: configuration error: invalid {variable}=\"{value}\": expected "
            )),
            "{}",
            lines[0]
        );
    }
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_startup_error() {
    let holder = ServiceProcess::start("ktrdr-data", &[]).await;
    let taken = holder.addr.to_string();
    let (status, _, stderr) = run_to_exit(
        "ktrdr-training-host",
        &[],
        &[("KTRDR_LISTEN_ADDR", taken.as_str())],
    )
    .await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {taken}")),
        "{stderr}"
    );
    assert!(stderr.contains("KTRDR_LISTEN_ADDR"), "{stderr}");
}

#[tokio::test]
async fn every_binary_has_help_listing_its_variables_and_a_version() {
    for (binary, _) in SERVICE_BINARIES {
        let (status, stdout, _) = run_to_exit(binary, &["--help"], &[]).await;
        assert!(status.success(), "{binary} --help");
        assert!(stdout.contains("Usage:"), "{binary}: {stdout}");
        assert!(stdout.contains("KTRDR_LISTEN_ADDR"), "{binary}: {stdout}");
        let (status, stdout, _) = run_to_exit(binary, &["--version"], &[]).await;
        assert!(status.success());
        assert!(stdout.starts_with(&format!("{binary} ")), "{stdout}");
    }
}
