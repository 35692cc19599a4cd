//! openraft's own storage conformance suite, run against keel's RocksDB
//! log store and state machine store.

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::{ErrorSubject, ErrorVerb, StorageError};
use tempfile::TempDir;

use super::{LogStore, StateMachineStore};
use crate::types::TypeConfig;

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for RocksBuilder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<TypeConfig>> {
        let dir = TempDir::new().map_err(|e| {
            StorageError::new(
                ErrorSubject::Store,
                ErrorVerb::Write,
                TypeConfig::err_from_error(&e),
            )
        })?;
        let storage = crate::store::open_unsealed(dir.path());
        Ok((dir, storage.log_store(), storage.state_machine()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_stores_pass_the_openraft_suite() {
    Suite::test_all(RocksBuilder).await.expect("storage suite");
}
