//! Desired state: what the manifests ask for, as last recorded. Recording is always of the whole
//! desired set, so a resource missing from it is tombstoned (kept, marked for cleanup) rather
//! than deleted; the row is forgotten only after its cleanup succeeded.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::entity::resources;
use crate::{Area, BATCH_ROWS, Key, Store, StoreError, json_text, new_id, now};

const TABLE: &str = "resources";

/// One resource of the desired set, as the loader produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredRecord {
    pub kind: String,
    pub name: String,
    /// The whole document as JSON.
    pub spec: serde_json::Value,
    /// A hash of the spec that changes exactly when its meaning changes.
    pub spec_hash: String,
    pub source_file: String,
    pub source_line: i64,
}

/// Where the desired set came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceInfo {
    /// The commit of the manifest repository, if it is one.
    pub git_commit: Option<String>,
    /// Whether the working tree had uncommitted changes.
    pub git_dirty: bool,
}

/// What [`Store::record_desired`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordOutcome {
    /// Recorded for the first time.
    pub created: Vec<Key>,
    /// The spec changed (the generation was bumped).
    pub changed: Vec<Key>,
    /// Was tombstoned and is back (the generation was bumped if its spec changed too).
    pub restored: Vec<Key>,
    /// No longer in the desired set: now tombstoned.
    pub tombstoned: Vec<Key>,
    /// Resources whose spec did not change.
    pub unchanged: usize,
}

impl RecordOutcome {
    /// Whether nothing needs reconciling.
    pub fn is_empty(&self) -> bool {
        self.created.is_empty()
            && self.changed.is_empty()
            && self.restored.is_empty()
            && self.tombstoned.is_empty()
    }

    /// Every key that needs a reconcile: created, changed, restored and tombstoned.
    pub fn touched(&self) -> impl Iterator<Item = &Key> {
        self.created
            .iter()
            .chain(&self.changed)
            .chain(&self.restored)
            .chain(&self.tombstoned)
    }
}

/// A recorded desired resource.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredRow {
    pub id: Uuid,
    pub kind: String,
    pub name: String,
    pub spec: serde_json::Value,
    pub spec_hash: String,
    /// 1 when first recorded, +1 whenever the spec hash changes.
    pub generation: i64,
    pub source_file: String,
    pub source_line: i64,
    /// The commit the current spec was recorded from.
    pub git_commit: Option<String>,
    pub git_dirty: bool,
    /// Set when the resource left the desired set; its cleanup is pending.
    pub tombstoned_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl DesiredRow {
    pub fn key(&self) -> Key {
        Key::new(self.kind.clone(), self.name.clone())
    }

    pub fn is_tombstoned(&self) -> bool {
        self.tombstoned_at.is_some()
    }
}

impl Store {
    /// Records the whole desired set in one transaction: inserts new resources, updates
    /// changed ones (bumping the generation when the spec hash differs), clears the tombstone
    /// of resources that came back, and tombstones every live resource not in `items`.
    /// A duplicate (kind, name) in `items` is an error and nothing is written.
    pub async fn record_desired(
        &self,
        items: &[DesiredRecord],
        source: &SourceInfo,
    ) -> Result<RecordOutcome, StoreError> {
        const OP: &str = "record_desired";
        let err = self.db_err(OP, TABLE);
        let txn = self.begin_write(Area::Desired).await.map_err(&err)?;

        let existing: HashMap<Key, resources::Model> = resources::Entity::find()
            .all(&txn)
            .await
            .map_err(&err)?
            .into_iter()
            .map(|row| (Key::new(row.kind.clone(), row.name.clone()), row))
            .collect();

        let at = now();
        let mut outcome = RecordOutcome::default();
        let mut seen: HashSet<Key> = HashSet::with_capacity(items.len());
        let mut inserts: Vec<resources::ActiveModel> = Vec::new();

        for item in items {
            if item.kind.is_empty() || item.name.is_empty() {
                return Err(StoreError::Invalid {
                    op: OP,
                    detail: format!(
                        "a resource has an empty kind or name (`{}/{}`)",
                        item.kind, item.name
                    ),
                });
            }
            let key = Key::new(item.kind.clone(), item.name.clone());
            // Checked as we go, after earlier items may already be written: returning the
            // error drops the transaction, which rolls all of it back.
            if !seen.insert(key.clone()) {
                return Err(StoreError::Invalid {
                    op: OP,
                    detail: format!("{key} appears twice in the desired set"),
                });
            }
            let spec = json_text(&item.spec);

            let Some(row) = existing.get(&key) else {
                inserts.push(resources::ActiveModel {
                    id: Set(new_id()),
                    kind: Set(item.kind.clone()),
                    name: Set(item.name.clone()),
                    spec: Set(spec),
                    spec_hash: Set(item.spec_hash.clone()),
                    generation: Set(1),
                    source_file: Set(item.source_file.clone()),
                    source_line: Set(item.source_line),
                    git_commit: Set(source.git_commit.clone()),
                    git_dirty: Set(source.git_dirty),
                    tombstoned_at: Set(None),
                    created_at: Set(at),
                    updated_at: Set(at),
                });
                outcome.created.push(key);
                if inserts.len() >= BATCH_ROWS {
                    resources::Entity::insert_many(std::mem::take(&mut inserts))
                        .exec_without_returning(&txn)
                        .await
                        .map_err(&err)?;
                }
                continue;
            };

            let was_tombstoned = row.tombstoned_at.is_some();
            let spec_changed = row.spec_hash != item.spec_hash;
            let moved = row.source_file != item.source_file || row.source_line != item.source_line;
            if !spec_changed && !was_tombstoned && !moved {
                outcome.unchanged += 1;
                continue;
            }

            let mut update = resources::ActiveModel {
                id: Set(row.id.clone()),
                source_file: Set(item.source_file.clone()),
                source_line: Set(item.source_line),
                tombstoned_at: Set(None),
                updated_at: Set(at),
                ..Default::default()
            };
            if spec_changed || was_tombstoned {
                // The commit recorded is the one the current spec came from, so it changes
                // only when the spec is (re)recorded, not on every apply.
                update.spec = Set(spec);
                update.spec_hash = Set(item.spec_hash.clone());
                update.git_commit = Set(source.git_commit.clone());
                update.git_dirty = Set(source.git_dirty);
            }
            if spec_changed {
                update.generation = Set(row.generation + 1);
            }
            resources::Entity::update(update)
                .exec_without_returning(&txn)
                .await
                .map_err(&err)?;

            if was_tombstoned {
                outcome.restored.push(key);
            } else if spec_changed {
                outcome.changed.push(key);
            } else {
                // Only the source position moved: nothing to reconcile.
                outcome.unchanged += 1;
            }
        }
        if !inserts.is_empty() {
            resources::Entity::insert_many(inserts)
                .exec_without_returning(&txn)
                .await
                .map_err(&err)?;
        }

        let mut gone: Vec<(&Key, &resources::Model)> = existing
            .iter()
            .filter(|(key, row)| row.tombstoned_at.is_none() && !seen.contains(*key))
            .collect();
        gone.sort_by(|a, b| a.0.cmp(b.0));
        for chunk in gone.chunks(BATCH_ROWS) {
            let ids: Vec<String> = chunk.iter().map(|(_, row)| row.id.clone()).collect();
            resources::Entity::update_many()
                .col_expr(resources::Column::TombstonedAt, Expr::value(Some(at)))
                .col_expr(resources::Column::UpdatedAt, Expr::value(at))
                .filter(resources::Column::Id.is_in(ids))
                .exec(&txn)
                .await
                .map_err(&err)?;
        }
        outcome.tombstoned = gone.into_iter().map(|(key, _)| key.clone()).collect();

        txn.commit().await.map_err(&err)?;
        Ok(outcome)
    }

    /// Recorded desired resources, ordered by kind and name; tombstoned ones only if asked.
    pub async fn list_desired(
        &self,
        kind: Option<&str>,
        include_tombstoned: bool,
    ) -> Result<Vec<DesiredRow>, StoreError> {
        let mut query = resources::Entity::find();
        if let Some(kind) = kind {
            query = query.filter(resources::Column::Kind.eq(kind));
        }
        if !include_tombstoned {
            query = query.filter(resources::Column::TombstonedAt.is_null());
        }
        query
            .order_by_asc(resources::Column::Kind)
            .order_by_asc(resources::Column::Name)
            .all(&self.db)
            .await
            .map_err(self.db_err("list_desired", TABLE))?
            .into_iter()
            .map(|row| self.desired_row(row))
            .collect()
    }

    /// One recorded desired resource (tombstoned or not).
    pub async fn get_desired(
        &self,
        kind: &str,
        name: &str,
    ) -> Result<Option<DesiredRow>, StoreError> {
        resources::Entity::find()
            .filter(resources::Column::Kind.eq(kind))
            .filter(resources::Column::Name.eq(name))
            .one(&self.db)
            .await
            .map_err(self.db_err("get_desired", TABLE))?
            .map(|row| self.desired_row(row))
            .transpose()
    }

    /// Deletes a tombstoned resource's row once its cleanup succeeded. Returns false (and
    /// deletes nothing) if there is no such tombstoned row: a resource that came back in the
    /// meantime must not be forgotten.
    pub async fn forget_desired(&self, kind: &str, name: &str) -> Result<bool, StoreError> {
        let result = resources::Entity::delete_many()
            .filter(resources::Column::Kind.eq(kind))
            .filter(resources::Column::Name.eq(name))
            .filter(resources::Column::TombstonedAt.is_not_null())
            .exec(&self.db)
            .await
            .map_err(self.db_err("forget_desired", TABLE))?;
        Ok(result.rows_affected > 0)
    }

    fn desired_row(&self, row: resources::Model) -> Result<DesiredRow, StoreError> {
        let what = format!("the spec of {}/{}", row.kind, row.name);
        Ok(DesiredRow {
            id: self.parse_uuid(TABLE, &row.id)?,
            spec: self.parse_json(TABLE, &what, &row.spec)?,
            kind: row.kind,
            name: row.name,
            spec_hash: row.spec_hash,
            generation: row.generation,
            source_file: row.source_file,
            source_line: row.source_line,
            git_commit: row.git_commit,
            git_dirty: row.git_dirty,
            tombstoned_at: row.tombstoned_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}
