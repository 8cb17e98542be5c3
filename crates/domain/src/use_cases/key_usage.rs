//! `lastUsedAt` without a write per request (API.md §5.1): authentication records the instant in
//! memory, and the server flushes the batch to the store every few seconds.

use std::collections::HashMap;
use std::sync::Mutex;

use super::ControlPlane;
use crate::{ApiKeyId, DomainError, Timestamp};

#[derive(Default)]
pub struct KeyUsage {
    pending: Mutex<HashMap<ApiKeyId, Timestamp>>,
}

impl KeyUsage {
    pub(super) fn record(&self, key: ApiKeyId, at: Timestamp) {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let latest = pending.entry(key).or_insert(at);
        *latest = (*latest).max(at);
    }

    fn take(&self) -> Vec<(ApiKeyId, Timestamp)> {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pending.drain().collect()
    }

    fn put_back(&self, batch: Vec<(ApiKeyId, Timestamp)>) {
        for (key, at) in batch {
            self.record(key, at);
        }
    }
}

impl ControlPlane {
    /// Writes the last-use instants recorded since the previous flush; returns how many keys.
    /// On a store error the batch is kept for the next flush.
    pub async fn flush_key_usage(&self) -> Result<usize, DomainError> {
        let batch = self.usage.take();
        if batch.is_empty() {
            return Ok(0);
        }
        match self.ports.api_keys.record_last_used(&batch).await {
            Ok(()) => Ok(batch.len()),
            Err(error) => {
                self.usage.put_back(batch);
                Err(error.into())
            }
        }
    }
}
