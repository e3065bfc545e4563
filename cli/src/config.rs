//! `ktrdr config`: how the gateway reaches each capability (GatewayService.GetConfiguration).

use ktrdr_proto::gateway::v1::GetConfigurationRequest;
use serde_json::json;

use crate::Context;
use crate::error::CliError;
use crate::json::short_name;
use crate::output::{Table, print, print_json};
use crate::time::{human_duration, iso_json, iso_or_dash};

pub async fn run(ctx: &Context) -> Result<(), CliError> {
    let config = ctx
        .gateway()
        .get_configuration(ctx.request(GetConfigurationRequest {}))
        .await
        .map_err(|s| ctx.error(s))?
        .into_inner();
    let service = config.service.unwrap_or_default();
    if ctx.json {
        let managers: Vec<_> = config
            .managers
            .iter()
            .map(|m| {
                let stats = m.stats.clone().unwrap_or_default();
                json!({
                    "manager": m.manager,
                    "service": m.service,
                    "mode": short_name(m.mode().as_str_name(), "MANAGER_MODE_"),
                    "url": m.url,
                    "urls": m.urls,
                    "env_prefix": m.env_prefix,
                    "env": m.env,
                    "healthy": m.healthy,
                    "health_message": m.health_message,
                    "warnings": m
                        .warnings
                        .iter()
                        .map(|w| json!({"code": w.code, "message": w.message}))
                        .collect::<Vec<_>>(),
                    "stats": {
                        "calls": stats.calls,
                        "errors": stats.errors,
                        "retries": stats.retries,
                        "in_flight": stats.in_flight,
                        "latency_avg_ms": stats.latency_avg_ms,
                        "last_call": iso_json(stats.last_call_at_ms),
                        "last_error": stats.last_error,
                        "last_error_at": iso_json(stats.last_error_at_ms),
                    },
                })
            })
            .collect();
        return print_json(&json!({
            "gateway": {
                "url": ctx.url,
                "name": service.name,
                "version": service.version,
                "listen_addr": service.listen_addr,
                "uptime_ms": service.uptime_ms,
            },
            "managers": managers,
        }));
    }
    let mut table = Table::new([
        "manager",
        "service",
        "mode",
        "url",
        "healthy",
        "health",
        "calls",
        "errors",
        "last error",
    ]);
    for m in &config.managers {
        let stats = m.stats.clone().unwrap_or_default();
        table.row([
            m.manager.clone(),
            m.service.clone(),
            short_name(m.mode().as_str_name(), "MANAGER_MODE_").to_lowercase(),
            if m.url.is_empty() {
                "-".to_owned()
            } else {
                m.url.clone()
            },
            if m.healthy { "yes" } else { "no" }.to_owned(),
            m.health_message.clone(),
            stats.calls.to_string(),
            stats.errors.to_string(),
            if stats.last_error.is_empty() {
                "-".to_owned()
            } else {
                format!(
                    "{} ({})",
                    stats.last_error,
                    iso_or_dash(stats.last_error_at_ms)
                )
            },
        ]);
    }
    let warnings: String = config
        .managers
        .iter()
        .flat_map(|m| {
            m.warnings
                .iter()
                .map(move |w| format!("\nwarning ({}): {} {}", m.manager, w.code, w.message))
        })
        .collect();
    print(&format!(
        "gateway {} {} at {} (up {})\n\n{}{warnings}",
        service.name,
        service.version,
        ctx.url,
        human_duration(service.uptime_ms),
        table.render()
    ))
}
