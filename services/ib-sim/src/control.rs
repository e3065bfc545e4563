//! `ktrdr.ib.v1.IbSimService`: the control API tests use to read counters, switch IB's rules
//! and inject faults.

use std::sync::Arc;
use std::time::Duration;

use ktrdr_common::ServiceError;
use ktrdr_proto::common::v1::ServiceInfo;
use ktrdr_proto::ib::v1::{self as pb, ib_sim_service_server::IbSimService};
use tonic::{Request, Response, Status};

use crate::codec::Kind;
use crate::session::standard_message;
use crate::state::{Fault, FaultAction, Rules, Sim, now_ms};

/// Implements `IbSimService` over the shared simulator state.
#[derive(Clone)]
pub struct IbSimApi {
    sim: Arc<Sim>,
    listen_addr: String,
}

impl IbSimApi {
    pub fn new(sim: Arc<Sim>, listen_addr: String) -> Self {
        Self { sim, listen_addr }
    }
}

fn rules_pb(r: Rules) -> pb::SimRules {
    pb::SimRules {
        pacing_identical_15s: r.pacing.identical_15s,
        pacing_same_contract_2s: r.pacing.same_contract_2s,
        pacing_60_per_10min: r.pacing.per_10min_60,
        max_open_50: r.pacing.max_open_50,
        legal_duration_check: r.legal_durations,
        client_id_in_use: r.client_id_in_use,
    }
}

fn kind_of(k: pb::SimRequestKind) -> Option<Kind> {
    match k {
        pb::SimRequestKind::Unspecified => None,
        pb::SimRequestKind::HistoricalData => Some(Kind::Historical),
        pb::SimRequestKind::HeadTimestamp => Some(Kind::HeadTimestamp),
        pb::SimRequestKind::ContractDetails => Some(Kind::ContractDetails),
    }
}

fn active_pb(faults: &[Fault]) -> Vec<pb::ActiveFault> {
    faults
        .iter()
        .map(|f| pb::ActiveFault {
            fault_id: f.id.clone(),
            kind: f.kind.to_owned(),
            description: f.description.clone(),
            remaining: f.remaining,
            created_at_ms: f.created_at_ms,
        })
        .collect()
}

fn count(n: i32) -> i32 {
    if n == 0 { 1 } else { n }
}

fn millis(field: &str, ms: i64) -> Result<Duration, ServiceError> {
    u64::try_from(ms)
        .map(Duration::from_millis)
        .map_err(|_| ServiceError::invalid_argument(field, "must not be negative"))
}

fn non_negative_count(field: &str, n: i32) -> Result<(), ServiceError> {
    if n < -1 {
        return Err(ServiceError::invalid_argument(
            field,
            "must be -1 (until reset), 0 (one) or positive",
        ));
    }
    Ok(())
}

impl IbSimApi {
    fn connectivity(&self, lost: bool, client_ids: &[i32], code: i32) -> usize {
        // send_replace: the state must stick even while no session subscribes to it.
        self.sim.connectivity_lost.send_replace(lost);
        let message = match code {
            1100 => standard_message(1100),
            1101 => "Connectivity between IB and Trader Workstation has been restored - data lost.".to_owned(),
            _ => "Connectivity between IB and Trader Workstation has been restored - data maintained.".to_owned(),
        };
        self.sim.count_error(code, false);
        self.sim.broadcast(client_ids, |codec| {
            codec.error(-1, code, &message, now_ms())
        })
    }

    fn inject(
        &self,
        fault: pb::inject_fault_request::Fault,
    ) -> Result<pb::InjectFaultResponse, ServiceError> {
        use pb::inject_fault_request::Fault as F;
        let created_at_ms = now_ms();
        let mut fraction = None;
        let (kind, description, action, remaining, request_kind, symbol, affected) = match fault {
            F::DropConnections(d) => {
                let refuse = millis(
                    "drop_connections.refuse_reconnect_ms",
                    d.refuse_reconnect_ms,
                )?;
                if d.after_requests < 0 {
                    return Err(ServiceError::invalid_argument(
                        "drop_connections.after_requests",
                        "must be 0 (now) or positive",
                    ));
                }
                if d.after_requests == 0 {
                    let n = self.sim.drop_clients(&d.client_ids, refuse);
                    return Ok(pb::InjectFaultResponse {
                        fault_id: format!("drop-{created_at_ms}"),
                        clients_affected: n as i32,
                        active_faults: active_pb(&self.sim.lock().faults),
                    });
                }
                (
                    "drop_connections",
                    format!(
                        "drop connections at the {}th request from now",
                        d.after_requests
                    ),
                    FaultAction::DropAfter {
                        client_ids: d.client_ids,
                        refuse_reconnect: refuse,
                    },
                    d.after_requests,
                    None,
                    String::new(),
                    0,
                )
            }
            F::ConnectivityLost(c) => {
                let restore = millis("connectivity_lost.restore_after_ms", c.restore_after_ms)?;
                let n = self.connectivity(true, &c.client_ids, 1100);
                if !restore.is_zero() {
                    let api = self.clone();
                    let ids = c.client_ids.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(restore).await;
                        api.connectivity(false, &ids, 1102);
                    });
                }
                return Ok(pb::InjectFaultResponse {
                    fault_id: format!("connectivity-lost-{created_at_ms}"),
                    clients_affected: n as i32,
                    active_faults: active_pb(&self.sim.lock().faults),
                });
            }
            F::ConnectivityRestored(c) => {
                let n =
                    self.connectivity(false, &c.client_ids, if c.data_lost { 1101 } else { 1102 });
                return Ok(pb::InjectFaultResponse {
                    fault_id: format!("connectivity-restored-{created_at_ms}"),
                    clients_affected: n as i32,
                    active_faults: active_pb(&self.sim.lock().faults),
                });
            }
            F::FailNextRequests(f) => {
                non_negative_count("fail_next_requests.count", f.count)?;
                if f.error_code <= 0 {
                    return Err(ServiceError::invalid_argument(
                        "fail_next_requests.error_code",
                        "an IB error code such as 162, 200 or 504",
                    ));
                }
                let message = if f.message.is_empty() {
                    standard_message(f.error_code)
                } else {
                    f.message.clone()
                };
                if !(0.0..1.0).contains(&f.fraction) {
                    return Err(ServiceError::invalid_argument(
                        "fail_next_requests.fraction",
                        "0 (every matching request) or a fraction below 1",
                    ));
                }
                fraction = (f.fraction > 0.0).then_some(f.fraction);
                // A fraction without a count means "until reset".
                let n = if fraction.is_some() && f.count == 0 {
                    -1
                } else {
                    count(f.count)
                };
                (
                    "fail_next_requests",
                    match fraction {
                        Some(x) => format!(
                            "fail {:.0} % of requests with {} (up to {n})",
                            x * 100.0,
                            f.error_code
                        ),
                        None => format!("fail next {n} requests with {}", f.error_code),
                    },
                    FaultAction::Fail {
                        code: f.error_code,
                        message,
                    },
                    n,
                    kind_of(f.request_kind()),
                    f.symbol,
                    0,
                )
            }
            F::DelayReplies(d) => {
                non_negative_count("delay_replies.count", d.count)?;
                let delay = millis("delay_replies.delay_ms", d.delay_ms)?;
                let n = count(d.count);
                (
                    "delay_replies",
                    format!("delay next {n} replies by {} ms", delay.as_millis()),
                    FaultAction::Delay(delay),
                    n,
                    kind_of(d.request_kind()),
                    d.symbol,
                    0,
                )
            }
        };
        let (fault_id, faults) = self.sim.add_fault(Fault {
            id: String::new(),
            kind,
            description,
            action,
            remaining,
            request_kind,
            symbol,
            created_at_ms,
            fraction,
            seen: 0,
        });
        Ok(pb::InjectFaultResponse {
            fault_id,
            clients_affected: affected,
            active_faults: active_pb(&faults),
        })
    }
}

#[tonic::async_trait]
impl IbSimService for IbSimApi {
    async fn get_sim_status(
        &self,
        _request: Request<pb::GetSimStatusRequest>,
    ) -> Result<Response<pb::GetSimStatusResponse>, Status> {
        let now = now_ms();
        let tws = self
            .sim
            .tws_addr
            .lock()
            .ok()
            .and_then(|a| *a)
            .map(|a| a.to_string())
            .unwrap_or_default();
        let inner = self.sim.lock();
        let mut clients: Vec<pb::SimClient> = inner
            .clients
            .values()
            .map(|c| pb::SimClient {
                client_id: c.client_id,
                peer_addr: c.peer.to_string(),
                connected_at_ms: c.connected_at_ms,
                requests_served: c.requests_served,
                server_version: c.server_version,
            })
            .collect();
        clients.sort_by_key(|c| (c.connected_at_ms, c.client_id));
        let counters = &inner.counters;
        Ok(Response::new(pb::GetSimStatusResponse {
            service: Some(ServiceInfo {
                name: crate::BINARY.to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                started_at_ms: self.sim.started_at_ms,
                uptime_ms: now - self.sim.started_at_ms,
                now_ms: now,
                listen_addr: self.listen_addr.clone(),
                hostname: std::env::var("HOSTNAME").unwrap_or_default(),
                pid: std::process::id(),
            }),
            tws_listen_addr: tws,
            clients,
            requests_served: counters.requests_served,
            rules: Some(rules_pb(inner.rules)),
            faults: active_pb(&inner.faults),
            connections_accepted: counters.connections_accepted,
            pacing_violations_sent: counters.pacing_violations_sent,
            errors_sent: counters.errors_sent,
            connectivity_lost: *self.sim.connectivity_lost.borrow(),
            requests_by_kind: counters
                .by_kind
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            errors_by_code: counters
                .errors_by_code
                .iter()
                .map(|(k, v)| (*k, *v))
                .collect(),
            open_historical_requests: inner.pacer.open as i32,
        }))
    }

    async fn set_rules(
        &self,
        request: Request<pb::SetRulesRequest>,
    ) -> Result<Response<pb::SetRulesResponse>, Status> {
        let r = request.into_inner();
        let mut inner = self.sim.lock();
        let rules = &mut inner.rules;
        let set = |slot: &mut bool, v: Option<bool>| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set(&mut rules.pacing.identical_15s, r.pacing_identical_15s);
        set(
            &mut rules.pacing.same_contract_2s,
            r.pacing_same_contract_2s,
        );
        set(&mut rules.pacing.per_10min_60, r.pacing_60_per_10min);
        set(&mut rules.pacing.max_open_50, r.max_open_50);
        set(&mut rules.legal_durations, r.legal_duration_check);
        set(&mut rules.client_id_in_use, r.client_id_in_use);
        let rules = *rules;
        tracing::info!(?rules, "rules changed");
        Ok(Response::new(pb::SetRulesResponse {
            rules: Some(rules_pb(rules)),
        }))
    }

    async fn inject_fault(
        &self,
        request: Request<pb::InjectFaultRequest>,
    ) -> Result<Response<pb::InjectFaultResponse>, Status> {
        let Some(fault) = request.into_inner().fault else {
            return Err(
                ServiceError::invalid_argument("fault", "exactly one fault must be set").into(),
            );
        };
        let response = self.inject(fault)?;
        tracing::info!(fault_id = %response.fault_id, affected = response.clients_affected, "fault injected");
        Ok(Response::new(response))
    }

    async fn reset_sim(
        &self,
        request: Request<pb::ResetSimRequest>,
    ) -> Result<Response<pb::ResetSimResponse>, Status> {
        if self.sim.reset() {
            // Connectivity was lost: clients hear that it is back, as after a real outage.
            self.connectivity(false, &[], 1102);
        }
        let dropped = if request.into_inner().drop_connections {
            self.sim.drop_clients(&[], Duration::ZERO)
        } else {
            0
        };
        Ok(Response::new(pb::ResetSimResponse {
            rules: Some(rules_pb(self.sim.rules())),
            connections_dropped: dropped as i32,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::SimSettings;

    #[tokio::test]
    async fn an_injected_connectivity_loss_sticks_without_any_session_and_reset_restores_it() {
        let sim = Sim::new(SimSettings::ib_defaults());
        let api = IbSimApi::new(Arc::clone(&sim), String::new());
        assert_eq!(
            sim.connectivity_lost.receiver_count(),
            0,
            "no session listens"
        );
        api.inject(pb::inject_fault_request::Fault::ConnectivityLost(
            pb::ConnectivityLostFault {
                client_ids: vec![],
                restore_after_ms: 0,
            },
        ))
        .unwrap();
        assert!(*sim.connectivity_lost.borrow(), "the loss is in effect");
        let status = api
            .get_sim_status(Request::new(pb::GetSimStatusRequest {}))
            .await
            .unwrap()
            .into_inner();
        assert!(status.connectivity_lost);
        api.reset_sim(Request::new(pb::ResetSimRequest {
            drop_connections: false,
        }))
        .await
        .unwrap();
        assert!(
            !*sim.connectivity_lost.borrow(),
            "ResetSim restores connectivity"
        );
        // The restoration was announced (1102), counted like any error sent.
        let status = api
            .get_sim_status(Request::new(pb::GetSimStatusRequest {}))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(status.errors_by_code.get(&1102), Some(&1));
    }
}
