//! When each API token was last used: noted in memory on every request (a map insert)
//! and saved to the store in batches by the background jobs, so that using a token
//! costs no write.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{ApiTokenId, OrgId};

use crate::store::Store;

/// Last-used times not yet saved.
#[derive(Default)]
pub struct TokenUse {
    unsaved: Mutex<HashMap<(OrgId, ApiTokenId), DateTime<Utc>>>,
}

impl TokenUse {
    /// Note that a token was used at `at`.
    pub fn note(&self, org: OrgId, id: ApiTokenId, at: DateTime<Utc>) {
        if let Ok(mut unsaved) = self.unsaved.lock() {
            unsaved.insert((org, id), at);
        }
    }

    /// The newest unsaved use of a token, if any.
    pub fn unsaved(&self, org: OrgId, id: ApiTokenId) -> Option<DateTime<Utc>> {
        self.unsaved.lock().ok()?.get(&(org, id)).copied()
    }

    /// Save what was noted; kept for the next try if the store fails.
    pub async fn flush(&self, store: &dyn Store) {
        let batch: Vec<_> = match self.unsaved.lock() {
            Ok(mut unsaved) if !unsaved.is_empty() => unsaved
                .drain()
                .map(|((org, id), at)| (org, id, at))
                .collect(),
            _ => return,
        };
        if let Err(e) = store.touch_api_tokens(batch.clone()).await {
            tracing::warn!(error = %e, "Saving when API tokens were last used failed; will retry.");
            if let Ok(mut unsaved) = self.unsaved.lock() {
                for (org, id, at) in batch {
                    let entry = unsaved.entry((org, id)).or_insert(at);
                    *entry = (*entry).max(at);
                }
            }
        }
    }
}
