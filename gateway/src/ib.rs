//! `IbManager`: the gateway's way to Interactive Brokers, routed by `USE_IB_HOST_SERVICE` either
//! to `ktrdr-ib-host` over one pooled channel or to an IB connection the gateway opens itself.
//! The gateway also serves `IbHostService`, so head timestamps and contract lookups are one
//! call away for users (bars should go through `LoadData`, which stores them).

use std::sync::Arc;

use ktrdr_common::client::ChannelPool;
use ktrdr_common::error::ServiceError;
use ktrdr_common::status::ProcessIdentity;
use ktrdr_ib_host::api::IbHostApi;
use ktrdr_ib_host::host::IbHost;
use ktrdr_proto::ib::v1::ib_host_service_client::IbHostServiceClient;
use ktrdr_proto::ib::v1::{self as pb, ib_host_service_server::IbHostService};
use tonic::transport::Channel;

use crate::config::{GatewayConfig, IB};
use crate::orchestrator::ServiceOrchestrator;
use crate::routing::{Backend, Endpoint, Routed, relay_service};

pub struct IbManager {
    routed: Routed<IbHostApi>,
    /// The in-process host (`USE_IB_HOST_SERVICE=false`), whose connection is its health.
    local_host: Option<Arc<IbHost>>,
}

fn client(channel: Channel) -> IbHostServiceClient<Channel> {
    IbHostServiceClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

impl IbManager {
    pub fn new(config: &GatewayConfig, pool: &ChannelPool) -> Result<Arc<Self>, ServiceError> {
        let route = config.routing.ib.clone();
        let mut local_host = None;
        let backend = if route.use_host_service {
            Backend::remote(&route, pool)?
        } else {
            let host = ktrdr_ib_host::connect(
                config.ib.clone(),
                config.ib_behaviour,
                ProcessIdentity::new("gateway", config.server.listen_addr),
            );
            local_host = Some(Arc::clone(&host));
            Backend::Local(IbHostApi::new(host))
        };
        Ok(Arc::new(Self {
            routed: Routed::new(&IB, route, backend, config.calls),
            local_host,
        }))
    }
}

relay_service!(IbHostService, IbManager {
    server_stream fetch_bars(pb::FetchBarsRequest) -> pb::FetchBarsResponse, FetchBarsStream;
    unary get_head_timestamp(pb::GetHeadTimestampRequest) -> pb::GetHeadTimestampResponse, true;
    unary lookup_contract(pb::LookupContractRequest) -> pb::LookupContractResponse, true;
    unary get_status(pb::GetStatusRequest) -> pb::GetStatusResponse, true;
});

#[tonic::async_trait]
impl ServiceOrchestrator for IbManager {
    fn endpoint(&self) -> &Endpoint {
        &self.routed
    }

    async fn health(&self) -> (bool, String) {
        match &self.local_host {
            Some(host) => {
                let connected = *host.source().watch_ready().borrow();
                let detail = if connected {
                    "in-process: connected to IB"
                } else {
                    "in-process: not connected to IB (reconnecting)"
                };
                (connected, detail.to_owned())
            }
            None => self.remote_health().await,
        }
    }
}
