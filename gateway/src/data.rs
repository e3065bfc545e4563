//! `DataManager`: the gateway's `DataService`, routed by `USE_DATA_SERVICE` either to
//! `ktrdr-data` over one pooled channel or to the store opened in-process.

use ktrdr_proto::bars::BarsProto;
use std::sync::Arc;

use ktrdr_common::client::ChannelPool;
use ktrdr_common::error::ServiceError;
use ktrdr_common::market::timeframe_field;
use ktrdr_data::api::DataApi;
use ktrdr_data::store::Store;
use ktrdr_market::Bars;
use ktrdr_proto::common::v1::BarBatch;
use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
use ktrdr_proto::data::v1::{self as pb, data_service_server::DataService};
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Response, Status};

use crate::config::{DATA, GatewayConfig};
use crate::orchestrator::ServiceOrchestrator;
use crate::routing::{Backend, Endpoint, Routed, relay_service};

pub struct DataManager {
    routed: Routed<DataApi>,
}

fn client(channel: Channel) -> DataServiceClient<Channel> {
    DataServiceClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

impl DataManager {
    pub fn new(config: &GatewayConfig, pool: &ChannelPool) -> Result<Arc<Self>, ServiceError> {
        let route = config.routing.data.clone();
        let backend = if route.use_host_service {
            Backend::remote(&route, pool)?
        } else {
            let store = Arc::new(Store::new(config.store.data_dir.clone()));
            Backend::Local(DataApi::new(store, config.server.listen_addr))
        };
        Ok(Arc::new(Self {
            routed: Routed::new(&DATA, route, backend, config.calls),
        }))
    }
}

impl DataManager {
    /// Stores one segment of bars fetched from IB (validated in REPAIR mode, so one bad bar
    /// does not cost the segment), routed like every call. Writing the same bars again gives
    /// the same store, so the call is retried like an idempotent one.
    pub async fn write_segment(
        &self,
        batch: BarBatch,
        source: &str,
    ) -> Result<pb::WriteBarsResponse, Status> {
        let routed = &self.routed;
        match &routed.backend {
            Backend::Local(local) => {
                let timeframe = timeframe_field("batch.timeframe", &batch.timeframe)?;
                let bars = Bars::from_batch_payload(batch.payload)
                    .map_err(|e| ServiceError::invalid_argument("batch.payload", e.to_string()))?;
                routed
                    .observe(local.write(batch.symbol, timeframe, true, source.to_owned(), bars))
                    .await
            }
            Backend::Remote { channel, .. } => {
                let message = pb::WriteBarsRequest {
                    batch: Some(batch),
                    validation_mode: pb::ValidationMode::Repair as i32,
                    source: source.to_owned(),
                };
                // No caller metadata: the load job writes on its own account, with the default
                // deadline and the job's trace context (added by the forwarding).
                let none = MetadataMap::new();
                let deadline = routed.deadline(&none);
                let call = || {
                    let mut client = client(channel.clone());
                    let stream = tokio_stream::iter([message.clone()]);
                    let request = routed.request_until(deadline, &none, stream);
                    async move { client.write_bars(request).await.map(Response::into_inner) }
                };
                routed.observe(routed.retrying(true, call)).await
            }
        }
    }
}

relay_service!(DataService, DataManager {
    client_stream write_bars(pb::WriteBarsRequest) -> pb::WriteBarsResponse;
    server_stream read_bars(pb::ReadBarsRequest) -> pb::ReadBarsResponse, ReadBarsStream;
    unary get_coverage(pb::GetCoverageRequest) -> pb::GetCoverageResponse, true;
    unary list_datasets(pb::ListDatasetsRequest) -> pb::ListDatasetsResponse, true;
    unary delete_dataset(pb::DeleteDatasetRequest) -> pb::DeleteDatasetResponse, false;
    client_stream import_csv(pb::ImportCsvRequest) -> pb::ImportCsvResponse;
    server_stream export_csv(pb::ExportCsvRequest) -> pb::ExportCsvResponse, ExportCsvStream;
    server_stream resample(pb::ResampleRequest) -> pb::ResampleResponse, ResampleStream;
    unary validate_bars(pb::ValidateBarsRequest) -> pb::ValidateBarsResponse, true;
    unary get_status(pb::GetStatusRequest) -> pb::GetStatusResponse, true;
});

#[tonic::async_trait]
impl ServiceOrchestrator for DataManager {
    fn endpoint(&self) -> &Endpoint {
        &self.routed
    }
}
