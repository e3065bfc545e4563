//! `ktrdr.data.v1.DataService` as the gateway serves it until its routing to the data service
//! (or the in-process store) lands: every method answers `UNIMPLEMENTED`.
//!
//! Methods whose issue has not landed yet answer `UNIMPLEMENTED` with a message naming the
//! method and the binary that answered.

use ktrdr_common::error::unimplemented_status;
use ktrdr_common::server::ResponseStream;
use ktrdr_proto::data::v1::{self as pb, data_service_server::DataService};
use tonic::{Request, Response, Status, Streaming};

const SERVICE: &str = "ktrdr.data.v1.DataService";

/// `DataService` with every method pending.
#[derive(Debug, Clone)]
pub struct PendingDataApi {
    server: &'static str,
}

impl PendingDataApi {
    pub fn new(server: &'static str) -> Self {
        Self { server }
    }

    fn unimplemented<T>(&self, method: &str) -> Result<T, Status> {
        Err(unimplemented_status(SERVICE, method, self.server))
    }
}

#[tonic::async_trait]
impl DataService for PendingDataApi {
    async fn write_bars(
        &self,
        _request: Request<Streaming<pb::WriteBarsRequest>>,
    ) -> Result<Response<pb::WriteBarsResponse>, Status> {
        self.unimplemented("WriteBars")
    }

    type ReadBarsStream = ResponseStream<pb::ReadBarsResponse>;

    async fn read_bars(
        &self,
        _request: Request<pb::ReadBarsRequest>,
    ) -> Result<Response<Self::ReadBarsStream>, Status> {
        self.unimplemented("ReadBars")
    }

    async fn get_coverage(
        &self,
        _request: Request<pb::GetCoverageRequest>,
    ) -> Result<Response<pb::GetCoverageResponse>, Status> {
        self.unimplemented("GetCoverage")
    }

    async fn list_datasets(
        &self,
        _request: Request<pb::ListDatasetsRequest>,
    ) -> Result<Response<pb::ListDatasetsResponse>, Status> {
        self.unimplemented("ListDatasets")
    }

    async fn delete_dataset(
        &self,
        _request: Request<pb::DeleteDatasetRequest>,
    ) -> Result<Response<pb::DeleteDatasetResponse>, Status> {
        self.unimplemented("DeleteDataset")
    }

    async fn import_csv(
        &self,
        _request: Request<Streaming<pb::ImportCsvRequest>>,
    ) -> Result<Response<pb::ImportCsvResponse>, Status> {
        self.unimplemented("ImportCsv")
    }

    type ExportCsvStream = ResponseStream<pb::ExportCsvResponse>;

    async fn export_csv(
        &self,
        _request: Request<pb::ExportCsvRequest>,
    ) -> Result<Response<Self::ExportCsvStream>, Status> {
        self.unimplemented("ExportCsv")
    }

    type ResampleStream = ResponseStream<pb::ResampleResponse>;

    async fn resample(
        &self,
        _request: Request<pb::ResampleRequest>,
    ) -> Result<Response<Self::ResampleStream>, Status> {
        self.unimplemented("Resample")
    }

    async fn validate_bars(
        &self,
        _request: Request<pb::ValidateBarsRequest>,
    ) -> Result<Response<pb::ValidateBarsResponse>, Status> {
        self.unimplemented("ValidateBars")
    }

    async fn get_status(
        &self,
        _request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        self.unimplemented("GetStatus")
    }
}
