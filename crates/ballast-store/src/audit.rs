//! The audit log: who did what, hash-chained. Each row's hash covers the previous row's hash
//! and the row's own fields, so editing or deleting a row breaks the chain from that row on
//! ([`Store::verify_audit_chain`] finds where). Truncating the newest rows cannot be detected
//! from the chain alone. Callers redact secrets from summaries before appending.

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::entity::audit_log;
use crate::{Area, AuditBreak, Store, StoreError, now};

const TABLE: &str = "audit_log";
/// The `prev_hash` of the first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Rows read per query while verifying.
const VERIFY_PAGE: u64 = 1000;

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: Uuid,
    /// 1, 2, 3, … without gaps.
    pub seq: i64,
    /// The OS user who ran the command.
    pub actor: String,
    pub action: String,
    pub summary: String,
    pub git_commit: Option<String>,
    pub created_at: DateTime<Utc>,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of an audit row: hex SHA-256 of a JSON array of a version tag, the previous hash
/// and the row's fields in a fixed order. JSON makes the encoding unambiguous (no field can
/// absorb its neighbour), and the timestamp is rendered at the microsecond precision both
/// backends store.
#[allow(clippy::too_many_arguments)]
fn chain_hash(
    prev_hash: &str,
    seq: i64,
    id: &str,
    actor: &str,
    action: &str,
    summary: &str,
    git_commit: Option<&str>,
    created_at: &DateTime<Utc>,
) -> String {
    let canonical = serde_json::json!([
        "ballast-audit-v1",
        prev_hash,
        seq,
        id,
        actor,
        action,
        summary,
        git_commit,
        created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
    ])
    .to_string();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

fn row_hash(row: &audit_log::Model) -> String {
    chain_hash(
        &row.prev_hash,
        row.seq,
        &row.id,
        &row.actor,
        &row.action,
        &row.summary,
        row.git_commit.as_deref(),
        &row.created_at,
    )
}

/// Appends an audit entry inside `txn`, which must hold the [`Area::Audit`] lock, so a change
/// and its audit row are written together or not at all.
pub(crate) async fn append_in<C: ConnectionTrait>(
    txn: &C,
    actor: &str,
    action: &str,
    summary: &str,
    git_commit: Option<&str>,
) -> Result<AuditRow, DbErr> {
    let last = audit_log::Entity::find()
        .order_by_desc(audit_log::Column::Seq)
        .one(txn)
        .await?;
    let (seq, prev_hash) = match last {
        Some(last) => (last.seq + 1, last.hash),
        None => (1, GENESIS_HASH.to_string()),
    };
    let id = Uuid::now_v7();
    let created_at = now();
    let id_text = id.to_string();
    let hash = chain_hash(
        &prev_hash,
        seq,
        &id_text,
        actor,
        action,
        summary,
        git_commit,
        &created_at,
    );
    audit_log::Entity::insert(audit_log::ActiveModel {
        id: Set(id_text),
        seq: Set(seq),
        actor: Set(actor.to_string()),
        action: Set(action.to_string()),
        summary: Set(summary.to_string()),
        git_commit: Set(git_commit.map(str::to_string)),
        created_at: Set(created_at),
        prev_hash: Set(prev_hash.clone()),
        hash: Set(hash.clone()),
    })
    .exec_without_returning(txn)
    .await?;
    Ok(AuditRow {
        id,
        seq,
        actor: actor.to_string(),
        action: action.to_string(),
        summary: summary.to_string(),
        git_commit: git_commit.map(str::to_string),
        created_at,
        prev_hash,
        hash,
    })
}

impl Store {
    /// Appends an entry, chained to the last one (read in the same transaction).
    pub async fn append_audit(
        &self,
        actor: &str,
        action: &str,
        summary: &str,
        git_commit: Option<&str>,
    ) -> Result<AuditRow, StoreError> {
        let err = self.db_err("append_audit", TABLE);
        let txn = self.begin_write(Area::Audit).await.map_err(&err)?;
        let row = append_in(&txn, actor, action, summary, git_commit)
            .await
            .map_err(&err)?;
        txn.commit().await.map_err(&err)?;
        Ok(row)
    }

    /// The newest entries first, at most `limit` of them.
    pub async fn list_audit(&self, limit: u64) -> Result<Vec<AuditRow>, StoreError> {
        audit_log::Entity::find()
            .order_by_desc(audit_log::Column::Seq)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(self.db_err("list_audit", TABLE))?
            .into_iter()
            .map(|row| {
                Ok(AuditRow {
                    id: self.parse_uuid(TABLE, &row.id)?,
                    seq: row.seq,
                    actor: row.actor,
                    action: row.action,
                    summary: row.summary,
                    git_commit: row.git_commit,
                    created_at: row.created_at,
                    prev_hash: row.prev_hash,
                    hash: row.hash,
                })
            })
            .collect()
    }

    /// Checks the whole chain: `Ok(number of rows)` when every row verifies, else
    /// [`StoreError::AuditBroken`] saying where the chain first breaks: a missing row (a gap in
    /// `seq`), a `prev_hash` that is not the previous row's hash, or a row whose contents no
    /// longer match its hash. Other errors are failures to read the log.
    pub async fn verify_audit_chain(&self) -> Result<usize, StoreError> {
        let err = self.db_err("verify_audit_chain", TABLE);
        let mut expected_seq: i64 = 1;
        let mut prev_hash = GENESIS_HASH.to_string();
        let mut count = 0usize;
        loop {
            let page = audit_log::Entity::find()
                .filter(audit_log::Column::Seq.gte(expected_seq))
                .order_by_asc(audit_log::Column::Seq)
                .limit(VERIFY_PAGE)
                .all(&self.db)
                .await
                .map_err(&err)?;
            if page.is_empty() {
                return Ok(count);
            }
            for row in page {
                if row.seq != expected_seq {
                    return Err(StoreError::AuditBroken(AuditBreak {
                        seq: expected_seq,
                        reason: format!(
                            "row {expected_seq} is missing (the next row is {})",
                            row.seq
                        ),
                    }));
                }
                if row.prev_hash != prev_hash {
                    return Err(StoreError::AuditBroken(AuditBreak {
                        seq: row.seq,
                        reason: "its prev_hash is not the hash of the row before it".to_string(),
                    }));
                }
                if row_hash(&row) != row.hash {
                    return Err(StoreError::AuditBroken(AuditBreak {
                        seq: row.seq,
                        reason: "its contents do not match its hash (the row was edited)"
                            .to_string(),
                    }));
                }
                prev_hash = row.hash;
                expected_seq += 1;
                count += 1;
            }
        }
    }
}
