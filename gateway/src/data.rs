//! `DataManager`: the gateway's `DataService`, routed by `USE_DATA_SERVICE` either to
//! `ktrdr-data` over one pooled channel or to the store opened in-process.
//!
//! Remote calls carry the caller's deadline and metadata; idempotent unary reads are retried
//! once on `UNAVAILABLE`; a host service that cannot be reached answers `UNAVAILABLE` with
//! `ErrorInfo{service, url}`, `RetryInfo` and what to do.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ktrdr_common::client::ChannelPool;
use ktrdr_common::deadline::forward;
use ktrdr_common::error::ServiceError;
use ktrdr_common::server::ResponseStream;
use ktrdr_data::api::DataApi;
use ktrdr_data::store::Store;
use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
use ktrdr_proto::data::v1::{self as pb, data_service_server::DataService};
use tokio_stream::StreamExt;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};
use tonic_types::StatusExt;

use crate::config::{GatewayConfig, Route};
use crate::orchestrator::ServiceOrchestrator;
use crate::stats::BackendStats;

const RETRY_BACKOFF: Duration = Duration::from_millis(100);

enum Backend {
    Remote { channel: Channel, url: String },
    Local(DataApi),
}

pub struct DataManager {
    route: Route,
    backend: Backend,
    stats: BackendStats,
}

impl DataManager {
    pub fn new(config: &GatewayConfig, pool: &ChannelPool) -> Result<Arc<Self>, ServiceError> {
        let route = config.routing.data.clone();
        let backend = if route.use_host_service {
            let url = route.urls.join(",");
            Backend::Remote {
                channel: pool.channel(&url)?,
                url,
            }
        } else {
            let store = Arc::new(Store::new(config.store.data_dir.clone()));
            Backend::Local(DataApi::new(store, config.server.listen_addr))
        };
        Ok(Arc::new(Self {
            route,
            backend,
            stats: BackendStats::default(),
        }))
    }

    /// A host-service transport failure as the error convention wants it.
    fn enrich(&self, status: Status) -> Status {
        let transport_failure = status.code() == tonic::Code::Unavailable
            && status.get_error_details().error_info().is_none();
        match &self.backend {
            Backend::Remote { url, .. } if transport_failure => ServiceError::service_unavailable(
                "Data",
                url.clone(),
                "start ktrdr-data or set USE_DATA_SERVICE=false to open the store in the gateway",
            )
            .into(),
            _ => status,
        }
    }

    /// Times one call and records its outcome.
    async fn observe<T>(&self, call: impl Future<Output = Result<T, Status>>) -> Result<T, Status> {
        let (_in_flight, started) = self.stats.start();
        let result = call.await.map_err(|s| self.enrich(s));
        self.stats
            .finish(started.elapsed(), result.as_ref().map(drop));
        result
    }

    /// A unary call to the host service; `idempotent` reads get one retry on `UNAVAILABLE`.
    async fn remote_unary<Req, Resp, F, Fut>(
        &self,
        channel: &Channel,
        metadata: &MetadataMap,
        message: Req,
        idempotent: bool,
        call: F,
    ) -> Result<Response<Resp>, Status>
    where
        Req: Clone,
        F: Fn(DataServiceClient<Channel>, Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let client = Self::client(channel);
        let mut result = call(client.clone(), forward(metadata, message.clone())).await;
        if idempotent && matches!(&result, Err(s) if s.code() == tonic::Code::Unavailable) {
            self.stats.retried();
            tokio::time::sleep(RETRY_BACKOFF).await;
            result = call(client, forward(metadata, message)).await;
        }
        result
    }

    fn client(channel: &Channel) -> DataServiceClient<Channel> {
        DataServiceClient::new(channel.clone())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }
}

/// A server-streaming response forwarded as it arrives.
fn relay<T: Send + 'static>(response: Response<Streaming<T>>) -> Response<ResponseStream<T>> {
    Response::new(Box::pin(response.into_inner()) as ResponseStream<T>)
}

macro_rules! unary {
    ($self:ident, $request:ident, $method:ident, $idempotent:expr) => {{
        match &$self.backend {
            Backend::Local(api) => $self.observe(api.$method($request)).await,
            Backend::Remote { channel, .. } => {
                let (metadata, _, message) = $request.into_parts();
                $self
                    .observe($self.remote_unary(
                        channel,
                        &metadata,
                        message,
                        $idempotent,
                        |mut c, r| async move { c.$method(r).await },
                    ))
                    .await
            }
        }
    }};
}

macro_rules! server_stream {
    ($self:ident, $request:ident, $method:ident) => {{
        match &$self.backend {
            Backend::Local(api) => $self.observe(api.$method($request)).await,
            Backend::Remote { channel, .. } => {
                let (metadata, _, message) = $request.into_parts();
                let mut client = Self::client(channel);
                $self
                    .observe(
                        async move { client.$method(forward(&metadata, message)).await.map(relay) },
                    )
                    .await
            }
        }
    }};
}

macro_rules! client_stream {
    ($self:ident, $request:ident, $method:ident) => {{
        match &$self.backend {
            Backend::Local(api) => $self.observe(api.$method($request)).await,
            Backend::Remote { channel, .. } => {
                let (metadata, _, stream) = $request.into_parts();
                // A failing upload ends the forwarded stream; the backend then sees a short file.
                let messages = stream.map_while(Result::ok);
                let mut client = Self::client(channel);
                $self
                    .observe(async move { client.$method(forward(&metadata, messages)).await })
                    .await
            }
        }
    }};
}

#[tonic::async_trait]
impl DataService for DataManager {
    async fn write_bars(
        &self,
        request: Request<Streaming<pb::WriteBarsRequest>>,
    ) -> Result<Response<pb::WriteBarsResponse>, Status> {
        client_stream!(self, request, write_bars)
    }

    type ReadBarsStream = ResponseStream<pb::ReadBarsResponse>;

    async fn read_bars(
        &self,
        request: Request<pb::ReadBarsRequest>,
    ) -> Result<Response<Self::ReadBarsStream>, Status> {
        server_stream!(self, request, read_bars)
    }

    async fn get_coverage(
        &self,
        request: Request<pb::GetCoverageRequest>,
    ) -> Result<Response<pb::GetCoverageResponse>, Status> {
        unary!(self, request, get_coverage, true)
    }

    async fn list_datasets(
        &self,
        request: Request<pb::ListDatasetsRequest>,
    ) -> Result<Response<pb::ListDatasetsResponse>, Status> {
        unary!(self, request, list_datasets, true)
    }

    async fn delete_dataset(
        &self,
        request: Request<pb::DeleteDatasetRequest>,
    ) -> Result<Response<pb::DeleteDatasetResponse>, Status> {
        unary!(self, request, delete_dataset, false)
    }

    async fn import_csv(
        &self,
        request: Request<Streaming<pb::ImportCsvRequest>>,
    ) -> Result<Response<pb::ImportCsvResponse>, Status> {
        client_stream!(self, request, import_csv)
    }

    type ExportCsvStream = ResponseStream<pb::ExportCsvResponse>;

    async fn export_csv(
        &self,
        request: Request<pb::ExportCsvRequest>,
    ) -> Result<Response<Self::ExportCsvStream>, Status> {
        server_stream!(self, request, export_csv)
    }

    type ResampleStream = ResponseStream<pb::ResampleResponse>;

    async fn resample(
        &self,
        request: Request<pb::ResampleRequest>,
    ) -> Result<Response<Self::ResampleStream>, Status> {
        server_stream!(self, request, resample)
    }

    async fn validate_bars(
        &self,
        request: Request<pb::ValidateBarsRequest>,
    ) -> Result<Response<pb::ValidateBarsResponse>, Status> {
        unary!(self, request, validate_bars, true)
    }

    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        unary!(self, request, get_status, true)
    }
}

#[tonic::async_trait]
impl ServiceOrchestrator for DataManager {
    fn manager(&self) -> &'static str {
        "data"
    }
    fn service(&self) -> &'static str {
        "ktrdr.data.v1.DataService"
    }
    fn env_prefix(&self) -> &'static str {
        "DATA_SERVICE"
    }
    fn default_url(&self) -> &'static str {
        "http://localhost:50054"
    }
    fn route(&self) -> &Route {
        &self.route
    }
    fn stats(&self) -> &BackendStats {
        &self.stats
    }
    fn channel(&self) -> Option<Channel> {
        match &self.backend {
            Backend::Remote { channel, .. } => Some(channel.clone()),
            Backend::Local(_) => None,
        }
    }
}
