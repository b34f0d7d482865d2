//! Docker containers as last listed on each server (the seeds' table shape). A listing replaces
//! the server's rows as a whole; rows that did not change are not rewritten, so `updated_at`
//! is when the container last changed.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::entity::containers;
use crate::{Area, BATCH_ROWS, Store, StoreError, batches, now};

const TABLE: &str = "containers";

/// A container as listed by the Docker engine of one server.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRecord {
    /// The Docker container id.
    pub id: String,
    pub name: String,
    pub image: String,
    /// Published ports, as the engine reports them.
    pub ports: serde_json::Value,
    /// `running`, `exited`, …
    pub state: String,
    /// Human-readable status (`Up 3 hours`).
    pub status: String,
    pub labels: BTreeMap<String, String>,
    /// The App this container belongs to, if ballast manages it.
    pub app: Option<String>,
}

/// A recorded container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRow {
    pub server: String,
    pub id: String,
    pub name: String,
    pub image: String,
    pub ports: serde_json::Value,
    pub state: String,
    pub status: String,
    pub labels: BTreeMap<String, String>,
    pub app: Option<String>,
    /// When the container was first recorded.
    pub created_at: DateTime<Utc>,
    /// When its record last changed.
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// Replaces the recorded containers of `server` with `rows`, in one transaction: rows not
    /// listed are deleted, new and changed ones written.
    pub async fn replace_containers(
        &self,
        server: &str,
        rows: &[ContainerRecord],
    ) -> Result<(), StoreError> {
        const OP: &str = "replace_containers";
        let mut ids = HashSet::with_capacity(rows.len());
        for row in rows {
            if !ids.insert(row.id.as_str()) {
                return Err(StoreError::Invalid {
                    op: OP,
                    detail: format!("container {} is listed twice on {server}", row.id),
                });
            }
        }
        let err = self.db_err(OP, TABLE);
        let txn = self.begin_write(Area::Containers).await.map_err(&err)?;
        let existing: HashMap<String, containers::Model> = containers::Entity::find()
            .filter(containers::Column::Server.eq(server))
            .all(&txn)
            .await
            .map_err(&err)?
            .into_iter()
            .map(|row| (row.id.clone(), row))
            .collect();

        let at = now();
        let mut upserts = Vec::new();
        for row in rows {
            let ports = crate::json_text(&row.ports);
            let labels = serde_json::to_string(&row.labels).unwrap_or_else(|_| "{}".to_string());
            if let Some(old) = existing.get(&row.id) {
                let same = old.name == row.name
                    && old.image == row.image
                    && old.state == row.state
                    && old.status == row.status
                    && old.app == row.app
                    && serde_json::from_str::<serde_json::Value>(&old.ports)
                        .ok()
                        .as_ref()
                        == Some(&row.ports)
                    && serde_json::from_str::<BTreeMap<String, String>>(&old.labels)
                        .ok()
                        .as_ref()
                        == Some(&row.labels);
                if same {
                    continue;
                }
            }
            upserts.push(containers::ActiveModel {
                server: Set(server.to_string()),
                id: Set(row.id.clone()),
                name: Set(row.name.clone()),
                image: Set(row.image.clone()),
                ports: Set(ports),
                state: Set(row.state.clone()),
                status: Set(row.status.clone()),
                labels: Set(labels),
                app: Set(row.app.clone()),
                created_at: Set(at),
                updated_at: Set(at),
            });
        }

        let mut gone: Vec<String> = existing
            .keys()
            .filter(|id| !ids.contains(id.as_str()))
            .cloned()
            .collect();
        gone.sort();
        for chunk in gone.chunks(BATCH_ROWS) {
            containers::Entity::delete_many()
                .filter(containers::Column::Server.eq(server))
                .filter(containers::Column::Id.is_in(chunk.to_vec()))
                .exec(&txn)
                .await
                .map_err(&err)?;
        }
        for chunk in batches(upserts) {
            containers::Entity::insert_many(chunk)
                .on_conflict(
                    // created_at is left out: it keeps the time the container was first seen.
                    OnConflict::columns([containers::Column::Server, containers::Column::Id])
                        .update_columns([
                            containers::Column::Name,
                            containers::Column::Image,
                            containers::Column::Ports,
                            containers::Column::State,
                            containers::Column::Status,
                            containers::Column::Labels,
                            containers::Column::App,
                            containers::Column::UpdatedAt,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(&err)?;
        }
        txn.commit().await.map_err(&err)
    }

    /// Recorded containers of one server, or of all servers, by server and name.
    pub async fn list_containers(
        &self,
        server: Option<&str>,
    ) -> Result<Vec<ContainerRow>, StoreError> {
        let mut query = containers::Entity::find();
        if let Some(server) = server {
            query = query.filter(containers::Column::Server.eq(server));
        }
        query
            .order_by_asc(containers::Column::Server)
            .order_by_asc(containers::Column::Name)
            .order_by_asc(containers::Column::Id)
            .all(&self.db)
            .await
            .map_err(self.db_err("list_containers", TABLE))?
            .into_iter()
            .map(|row| {
                let what = format!("the ports of container {} on {}", row.id, row.server);
                let ports = self.parse_json(TABLE, &what, &row.ports)?;
                let labels = serde_json::from_str(&row.labels).map_err(|e| {
                    self.corrupt(
                        TABLE,
                        format!(
                            "the labels of container {} on {} are not a JSON object of strings: {e}",
                            row.id, row.server
                        ),
                    )
                })?;
                Ok(ContainerRow {
                    server: row.server,
                    id: row.id,
                    name: row.name,
                    image: row.image,
                    ports,
                    state: row.state,
                    status: row.status,
                    labels,
                    app: row.app,
                    created_at: row.created_at,
                    updated_at: row.updated_at,
                })
            })
            .collect()
    }
}
