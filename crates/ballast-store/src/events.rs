//! System events: what ballast itself did or found (a reload, a failed reload, drift found or
//! healed, a failed reconcile, the daemon starting or stopping), for `ballast events` and its
//! `-w` follow mode.
//!
//! Each event gets the next `seq` (1, 2, 3, …) inside a write transaction that holds the events
//! lock until commit (an advisory lock on PostgreSQL, `BEGIN IMMEDIATE` on SQLite). So events
//! become visible strictly in `seq` order, and a follower that asks for `seq > last` never skips
//! one. (A PostgreSQL identity column would not give that: a lower number can commit after a
//! higher one is already visible.)

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::entity::system_events;
use crate::{Area, Store, StoreError, now};

const TABLE: &str = "system_events";

/// How much an event matters. Ordered: `Info < Warning < Error`. Serializes (and displays) as
/// the lower-case word stored in the database.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` honours width and alignment in tables.
        f.pad(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "error" => Ok(Severity::Error),
            other => Err(format!(
                "unknown severity `{other}` (expected info, warning or error)"
            )),
        }
    }
}

/// An event to record with [`Store::append_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent<'a> {
    /// What happened: `reload`, `reload_failed`, `drift_found`, `drift_healed`,
    /// `reconcile_failed`, `daemon_started`, `daemon_stopped`, …
    pub kind: &'a str,
    pub severity: Severity,
    pub message: String,
    /// The resource concerned, as `Kind/name` (e.g. `App/web`), if any.
    pub resource: Option<String>,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EventRow {
    pub id: Uuid,
    /// 1, 2, 3, … in the order events were recorded.
    pub seq: i64,
    /// The event type (`reload`, `drift_found`, …); the column is `type`.
    #[serde(rename = "type")]
    pub kind: String,
    pub severity: Severity,
    pub message: String,
    pub resource: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Which events [`Store::list_events`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events after this `seq`, oldest first: a follower starts at `Some(0)` (or the
    /// newest `seq` it has shown) and then passes the last `seq` it saw. Without it (`None`),
    /// the newest events first.
    pub since_seq: Option<i64>,
    /// At most this many: the oldest after `since_seq`, or else the newest.
    pub limit: Option<u64>,
    /// Only events about this resource (`Kind/name`).
    pub resource: Option<String>,
    /// Only events at least this severe.
    pub min_severity: Option<Severity>,
}

impl Store {
    /// Records an event with the next `seq`.
    pub async fn append_event(&self, event: NewEvent<'_>) -> Result<EventRow, StoreError> {
        const OP: &str = "append_event";
        if event.kind.is_empty() {
            return Err(StoreError::Invalid {
                op: OP,
                detail: "the event type is empty".to_string(),
            });
        }
        let err = self.db_err(OP, TABLE);
        let txn = self.begin_write(Area::Events).await.map_err(&err)?;
        let last: Option<i64> = system_events::Entity::find()
            .select_only()
            .column(system_events::Column::Seq)
            .order_by_desc(system_events::Column::Seq)
            .limit(1)
            .into_tuple()
            .one(&txn)
            .await
            .map_err(&err)?;
        let row = EventRow {
            id: Uuid::now_v7(),
            seq: last.unwrap_or(0) + 1,
            kind: event.kind.to_string(),
            severity: event.severity,
            message: event.message,
            resource: event.resource,
            created_at: now(),
        };
        system_events::Entity::insert(system_events::ActiveModel {
            id: Set(row.id.to_string()),
            seq: Set(row.seq),
            kind: Set(row.kind.clone()),
            severity: Set(row.severity.as_str().to_string()),
            message: Set(row.message.clone()),
            resource: Set(row.resource.clone()),
            created_at: Set(row.created_at),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(&err)?;
        txn.commit().await.map_err(&err)?;
        Ok(row)
    }

    /// Events matching `filter`. With `since_seq`, the events after it **oldest first** (so a
    /// follower pages forward: pass the last `seq` it saw); without, the **newest first**.
    /// `limit` keeps the first that many of that order.
    pub async fn list_events(&self, filter: EventFilter) -> Result<Vec<EventRow>, StoreError> {
        let mut query = system_events::Entity::find();
        if let Some(resource) = filter.resource {
            query = query.filter(system_events::Column::Resource.eq(resource));
        }
        if let Some(min) = filter.min_severity {
            let levels = Severity::ALL
                .into_iter()
                .filter(|s| *s >= min)
                .map(Severity::as_str);
            query = query.filter(system_events::Column::Severity.is_in(levels));
        }
        query = match filter.since_seq {
            Some(since) => query
                .filter(system_events::Column::Seq.gt(since))
                .order_by_asc(system_events::Column::Seq),
            None => query.order_by_desc(system_events::Column::Seq),
        };
        if let Some(limit) = filter.limit {
            query = query.limit(limit);
        }
        query
            .all(&self.db)
            .await
            .map_err(self.db_err("list_events", TABLE))?
            .into_iter()
            .map(|row| self.event_row(row))
            .collect()
    }

    /// The newest event of type `kind`, if any.
    pub async fn latest_event(&self, kind: &str) -> Result<Option<EventRow>, StoreError> {
        system_events::Entity::find()
            .filter(system_events::Column::Kind.eq(kind))
            .order_by_desc(system_events::Column::Seq)
            .one(&self.db)
            .await
            .map_err(self.db_err("latest_event", TABLE))?
            .map(|row| self.event_row(row))
            .transpose()
    }

    fn event_row(&self, row: system_events::Model) -> Result<EventRow, StoreError> {
        Ok(EventRow {
            id: self.parse_uuid(TABLE, &row.id)?,
            severity: row
                .severity
                .parse()
                .map_err(|e: String| self.corrupt(TABLE, format!("event {}: {e}", row.seq)))?,
            seq: row.seq,
            kind: row.kind,
            message: row.message,
            resource: row.resource,
            created_at: row.created_at,
        })
    }
}
