//! Observed state and its history. The `observed` table holds the last state seen of each
//! resource; `state_snapshots` gets a row only when that state changed, so a resync that finds
//! nothing new writes no history. The batch form handles a whole kind (10,000 rows) with one
//! read and one transaction.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::entity::{observed, state_snapshots};
use crate::{Area, BATCH_ROWS, Store, StoreError, batches, json_text, new_id, now};

const TABLE: &str = "observed";
const SNAPSHOTS: &str = "state_snapshots";

/// Why a state snapshot was written. Serializes as the lower-case word stored in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeType {
    /// First seen after ballast created it.
    Created,
    /// The observed state changed.
    Updated,
    /// It is gone.
    Deleted,
    /// First seen, not created by ballast (found by a scan or an import).
    Discovered,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Created => "created",
            ChangeType::Updated => "updated",
            ChangeType::Deleted => "deleted",
            ChangeType::Discovered => "discovered",
        }
    }
}

impl fmt::Display for ChangeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` honours width and alignment in tables.
        f.pad(self.as_str())
    }
}

impl FromStr for ChangeType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "created" => Ok(ChangeType::Created),
            "updated" => Ok(ChangeType::Updated),
            "deleted" => Ok(ChangeType::Deleted),
            "discovered" => Ok(ChangeType::Discovered),
            other => Err(format!("unknown change type `{other}`")),
        }
    }
}

/// The last observed state of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedRow {
    pub kind: String,
    pub name: String,
    pub state: serde_json::Value,
    /// When it was last observed.
    pub observed_at: DateTime<Utc>,
    /// When its state last changed.
    pub changed_at: DateTime<Utc>,
}

/// One entry of a resource's observed-state history.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotRow {
    pub id: Uuid,
    pub kind: String,
    pub name: String,
    pub change_type: ChangeType,
    /// The state after the change; for `Deleted`, the last state seen before it went away.
    pub state: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// Records what was observed of one resource. Writes a snapshot only if the state differs
    /// from the recorded one: `first_seen` (`Created` or `Discovered`) when there was no
    /// record, `Updated` otherwise. Returns the change written, `None` if nothing changed.
    pub async fn record_observed(
        &self,
        kind: &str,
        name: &str,
        state: &serde_json::Value,
        first_seen: ChangeType,
    ) -> Result<Option<ChangeType>, StoreError> {
        let changes = self
            .write_observed("record_observed", kind, &[(name, state)], first_seen, true)
            .await?;
        Ok(changes.into_iter().next().map(|(_, change)| change))
    }

    /// [`record_observed`](Self::record_observed) for many resources of one kind: one query
    /// reads the recorded states, one transaction writes the changes. Returns the changes
    /// written, in the order of `items`.
    pub async fn record_observed_many(
        &self,
        kind: &str,
        items: &[(String, serde_json::Value)],
        first_seen: ChangeType,
    ) -> Result<Vec<(String, ChangeType)>, StoreError> {
        let borrowed: Vec<(&str, &serde_json::Value)> = items
            .iter()
            .map(|(name, state)| (name.as_str(), state))
            .collect();
        let changes = self
            .write_observed("record_observed_many", kind, &borrowed, first_seen, false)
            .await?;
        Ok(changes
            .into_iter()
            .map(|(name, change)| (name.to_string(), change))
            .collect())
    }

    async fn write_observed<'a>(
        &self,
        op: &'static str,
        kind: &str,
        items: &[(&'a str, &serde_json::Value)],
        first_seen: ChangeType,
        single: bool,
    ) -> Result<Vec<(&'a str, ChangeType)>, StoreError> {
        if !matches!(first_seen, ChangeType::Created | ChangeType::Discovered) {
            return Err(StoreError::Invalid {
                op,
                detail: format!("first_seen must be created or discovered, not {first_seen}"),
            });
        }
        let mut names = HashSet::with_capacity(items.len());
        for (name, _) in items {
            if !names.insert(*name) {
                return Err(StoreError::Invalid {
                    op,
                    detail: format!("{kind}/{name} appears twice"),
                });
            }
        }
        if items.is_empty() {
            return Ok(Vec::new());
        }

        let err = self.db_err(op, TABLE);
        let txn = self.begin_write(Area::Observed).await.map_err(&err)?;
        let mut query = observed::Entity::find().filter(observed::Column::Kind.eq(kind));
        if single {
            query = query.filter(observed::Column::Name.eq(items[0].0));
        }
        let existing: HashMap<String, observed::Model> = query
            .all(&txn)
            .await
            .map_err(&err)?
            .into_iter()
            .map(|row| (row.name.clone(), row))
            .collect();

        let at = now();
        let mut changes = Vec::new();
        let mut upserts = Vec::new();
        let mut snapshots = Vec::new();
        let mut unchanged_ids = Vec::new();
        for (name, state) in items {
            let change = match existing.get(*name) {
                None => first_seen,
                Some(row) => {
                    // Compared as values, not text: key order and formatting are not changes.
                    let what = format!("the state of {kind}/{name}");
                    let recorded = self.parse_json(TABLE, &what, &row.state)?;
                    if recorded == **state {
                        unchanged_ids.push(row.id.clone());
                        continue;
                    }
                    ChangeType::Updated
                }
            };
            let text = json_text(state);
            upserts.push(observed::ActiveModel {
                id: Set(new_id()),
                kind: Set(kind.to_string()),
                name: Set(name.to_string()),
                state: Set(text.clone()),
                observed_at: Set(at),
                changed_at: Set(at),
            });
            snapshots.push(snapshot(kind, name, change, text, at));
            changes.push((*name, change));
        }

        for chunk in batches(upserts) {
            observed::Entity::insert_many(chunk)
                .on_conflict(
                    OnConflict::columns([observed::Column::Kind, observed::Column::Name])
                        .update_columns([
                            observed::Column::State,
                            observed::Column::ObservedAt,
                            observed::Column::ChangedAt,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(&err)?;
        }
        for chunk in batches(snapshots) {
            state_snapshots::Entity::insert_many(chunk)
                .exec_without_returning(&txn)
                .await
                .map_err(self.db_err(op, SNAPSHOTS))?;
        }
        for chunk in unchanged_ids.chunks(BATCH_ROWS) {
            observed::Entity::update_many()
                .col_expr(observed::Column::ObservedAt, Expr::value(at))
                .filter(observed::Column::Id.is_in(chunk.to_vec()))
                .exec(&txn)
                .await
                .map_err(&err)?;
        }
        txn.commit().await.map_err(&err)?;
        Ok(changes)
    }

    /// Records that a resource is gone: deletes its observed row and writes a `Deleted`
    /// snapshot (holding the last state seen). Returns false if there was no row.
    pub async fn record_gone(&self, kind: &str, name: &str) -> Result<bool, StoreError> {
        const OP: &str = "record_gone";
        let err = self.db_err(OP, TABLE);
        let txn = self.begin_write(Area::Observed).await.map_err(&err)?;
        let row = observed::Entity::find()
            .filter(observed::Column::Kind.eq(kind))
            .filter(observed::Column::Name.eq(name))
            .one(&txn)
            .await
            .map_err(&err)?;
        let Some(row) = row else {
            return Ok(false);
        };
        observed::Entity::delete_by_id(row.id.clone())
            .exec(&txn)
            .await
            .map_err(&err)?;
        state_snapshots::Entity::insert(snapshot(
            kind,
            name,
            ChangeType::Deleted,
            row.state,
            now(),
        ))
        .exec_without_returning(&txn)
        .await
        .map_err(self.db_err(OP, SNAPSHOTS))?;
        txn.commit().await.map_err(&err)?;
        Ok(true)
    }

    /// The observed state of every resource of `kind`, by name, in one query.
    pub async fn list_observed(&self, kind: &str) -> Result<Vec<ObservedRow>, StoreError> {
        observed::Entity::find()
            .filter(observed::Column::Kind.eq(kind))
            .order_by_asc(observed::Column::Name)
            .all(&self.db)
            .await
            .map_err(self.db_err("list_observed", TABLE))?
            .into_iter()
            .map(|row| self.observed_row(row))
            .collect()
    }

    /// The observed state of one resource.
    pub async fn get_observed(
        &self,
        kind: &str,
        name: &str,
    ) -> Result<Option<ObservedRow>, StoreError> {
        observed::Entity::find()
            .filter(observed::Column::Kind.eq(kind))
            .filter(observed::Column::Name.eq(name))
            .one(&self.db)
            .await
            .map_err(self.db_err("get_observed", TABLE))?
            .map(|row| self.observed_row(row))
            .transpose()
    }

    /// The observed-state history of one resource, oldest first.
    pub async fn list_snapshots(
        &self,
        kind: &str,
        name: &str,
    ) -> Result<Vec<SnapshotRow>, StoreError> {
        state_snapshots::Entity::find()
            .filter(state_snapshots::Column::Kind.eq(kind))
            .filter(state_snapshots::Column::Name.eq(name))
            .order_by_asc(state_snapshots::Column::CreatedAt)
            // v7 ids are time-ordered: the tie-break for snapshots of the same microsecond.
            .order_by_asc(state_snapshots::Column::Id)
            .all(&self.db)
            .await
            .map_err(self.db_err("list_snapshots", SNAPSHOTS))?
            .into_iter()
            .map(|row| {
                let what = format!("snapshot {} of {}/{}", row.id, row.kind, row.name);
                Ok(SnapshotRow {
                    id: self.parse_uuid(SNAPSHOTS, &row.id)?,
                    change_type: row
                        .change_type
                        .parse()
                        .map_err(|e: String| self.corrupt(SNAPSHOTS, e))?,
                    state: self.parse_json(SNAPSHOTS, &what, &row.state)?,
                    kind: row.kind,
                    name: row.name,
                    created_at: row.created_at,
                })
            })
            .collect()
    }

    fn observed_row(&self, row: observed::Model) -> Result<ObservedRow, StoreError> {
        let what = format!("the state of {}/{}", row.kind, row.name);
        Ok(ObservedRow {
            state: self.parse_json(TABLE, &what, &row.state)?,
            kind: row.kind,
            name: row.name,
            observed_at: row.observed_at,
            changed_at: row.changed_at,
        })
    }
}

fn snapshot(
    kind: &str,
    name: &str,
    change: ChangeType,
    state: String,
    at: DateTime<Utc>,
) -> state_snapshots::ActiveModel {
    state_snapshots::ActiveModel {
        id: Set(new_id()),
        kind: Set(kind.to_string()),
        name: Set(name.to_string()),
        change_type: Set(change.as_str().to_string()),
        state: Set(state),
        created_at: Set(at),
    }
}
