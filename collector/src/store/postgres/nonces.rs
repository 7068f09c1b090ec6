//! The replay guard every instance shares: signed requests' nonces kept in the
//! database until their timestamps expire. Claims are batched: the claims waiting at a
//! moment go in one `INSERT ... ON CONFLICT DO NOTHING` (one commit for all of them),
//! and a claim is fresh when its row was inserted by it.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::AgentId;
use tokio::sync::{mpsc, oneshot};

use super::sql::{exec, get, rows};
use crate::store::{Error, Result};

/// The most claims in one statement.
const MAX_BATCH: usize = 1024;
/// Batches between two sweeps of expired nonces.
const SWEEP_EVERY: u64 = 256;

struct Claim {
    agent: AgentId,
    nonce: [u8; 16],
    expires_at: DateTime<Utc>,
    answer: oneshot::Sender<Result<bool>>,
}

/// Where claims are sent.
#[derive(Clone)]
pub(super) struct Nonces {
    claims: mpsc::Sender<Claim>,
}

impl Nonces {
    pub fn start(pool: deadpool_postgres::Pool) -> Self {
        let (claims, rx) = mpsc::channel(8 * MAX_BATCH);
        tokio::spawn(run(pool, rx));
        Self { claims }
    }

    /// Record a nonce; `false` when any instance recorded it before.
    pub async fn claim(
        &self,
        agent: AgentId,
        nonce: u128,
        expires_at: DateTime<Utc>,
    ) -> Result<bool> {
        let (answer, rx) = oneshot::channel();
        let claim = Claim {
            agent,
            nonce: nonce.to_be_bytes(),
            expires_at,
            answer,
        };
        self.claims
            .send(claim)
            .await
            .map_err(|_| Error::internal("the replay guard has stopped"))?;
        rx.await
            .map_err(|_| Error::Unavailable("the replay guard dropped a claim".into()))?
    }
}

async fn run(pool: deadpool_postgres::Pool, mut rx: mpsc::Receiver<Claim>) {
    let mut batches = 0u64;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(claim) => batch.push(claim),
                Err(_) => break,
            }
        }
        batches += 1;
        let outcome = insert(&pool, &batch, batches.is_multiple_of(SWEEP_EVERY)).await;
        answer(batch, outcome);
    }
}

/// Insert a batch; answers the (agent, nonce) pairs this batch inserted.
async fn insert(
    pool: &deadpool_postgres::Pool,
    batch: &[Claim],
    sweep: bool,
) -> Result<HashSet<(uuid::Uuid, Vec<u8>)>> {
    let db = pool.get().await?;
    if sweep {
        exec(
            &db,
            "DELETE FROM request_nonces WHERE expires_at < now()",
            &[],
        )
        .await?;
    }
    let agents: Vec<uuid::Uuid> = batch.iter().map(|c| c.agent.0).collect();
    let nonces: Vec<&[u8]> = batch.iter().map(|c| c.nonce.as_slice()).collect();
    let expiries: Vec<DateTime<Utc>> = batch.iter().map(|c| c.expires_at).collect();
    let inserted = rows(
        &db,
        "INSERT INTO request_nonces (agent, nonce, expires_at) \
         SELECT * FROM unnest($1::uuid[], $2::bytea[], $3::timestamptz[]) \
         ON CONFLICT DO NOTHING RETURNING agent, nonce",
        &[&agents, &nonces, &expiries],
    )
    .await?;
    inserted
        .iter()
        .map(|r| Ok((get(r, 0)?, get(r, 1)?)))
        .collect()
}

/// Tell each claim whether it was fresh: its row inserted now, and the first of the
/// batch to name it.
fn answer(batch: Vec<Claim>, outcome: Result<HashSet<(uuid::Uuid, Vec<u8>)>>) {
    match outcome {
        Ok(mut inserted) => {
            for claim in batch {
                let fresh = inserted.remove(&(claim.agent.0, claim.nonce.to_vec()));
                let _ = claim.answer.send(Ok(fresh));
            }
        }
        Err(e) => {
            for claim in batch {
                let _ = claim.answer.send(Err(e.clone()));
            }
        }
    }
}
