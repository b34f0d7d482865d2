//! Leases: so `ballast apply` and the daemon never act on one resource at once. A lease is a
//! row naming a resource ("App/web"), its holder and when it expires; it is free when there is
//! no row or the row has expired.
//!
//! Taking a lease is one statement, a compare-and-set upsert:
//!
//! ```sql
//! INSERT INTO leases (…) VALUES (…)
//! ON CONFLICT (name) DO UPDATE SET …
//!   WHERE leases.holder = :holder OR leases.expires_at < :now
//! ```
//!
//! It affects one row when the lease was free, already ours (a renewal) or expired (a
//! takeover), and none when someone else holds it. Both backends make it race-free: SQLite runs
//! one writer at a time, and PostgreSQL's `ON CONFLICT DO UPDATE` locks the conflicting row and
//! re-checks the `WHERE` against its newest version (a concurrent insert of the same name waits
//! for the other transaction and then sees its row).
//!
//! A holder renews its leases while it acts (the engine: TTL 60 s, renewed every 20 s), so a
//! lease outlives its holder by at most the TTL: a holder on another machine that died is taken
//! over once its lease expired. A holder on this host that no longer exists is taken over at
//! once ([`Store::take_lease`]), and [`Store::clean_stale_leases`] removes the rows of both.
//!
//! Times come from this process's clock (UTC, microseconds), on every side of a comparison:
//! holders on different machines need clocks in sync to well under the TTL. On SQLite the
//! timestamps are RFC 3339 text in UTC, which sorts in time order, so the comparison is exact.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};

use crate::entity::leases;
use crate::holder::Liveness;
use crate::{Area, Holder, Store, StoreError, now};

const TABLE: &str = "leases";

/// A lease as recorded. One whose `expires_at` has passed is free for anyone to take.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeaseRow {
    /// What the lease guards, e.g. `App/web`.
    pub name: String,
    /// Who holds it (a process's holder id).
    pub holder: String,
    /// When the current holder took it (kept across renewals).
    pub acquired_at: DateTime<Utc>,
    /// When the holder last acquired or renewed it.
    pub renewed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl LeaseRow {
    /// Whether the lease has expired at `at` (and so may be taken over).
    pub fn is_expired_at(&self, at: DateTime<Utc>) -> bool {
        self.expires_at < at
    }
}

/// The outcome of [`Store::take_lease`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseTake {
    /// The lease is now ours.
    Taken,
    /// Someone alive holds it.
    Held(LeaseRow),
}

impl Store {
    /// Takes the lease `name` for `me`, as [`try_acquire_lease`](Store::try_acquire_lease)
    /// does, and also takes over a lease whose holder is a process of this host that no longer
    /// exists (a `kill -9`'d apply must not block the next one until its lease expires).
    /// Returns the live holder's row when someone else has it.
    pub async fn take_lease(
        &self,
        name: &str,
        me: &Holder,
        ttl: Duration,
    ) -> Result<LeaseTake, StoreError> {
        let holder = me.to_string();
        // Twice at most: once as it is, once after removing a dead holder's row.
        for _ in 0..2 {
            if self.try_acquire_lease(name, &holder, ttl).await? {
                return Ok(LeaseTake::Taken);
            }
            let Some(row) = self.get_lease(name).await? else {
                // Released between the two statements: try again.
                continue;
            };
            let gone =
                Holder::parse(&row.holder).is_some_and(|h| h.liveness_from(me) == Liveness::Gone);
            if !gone {
                return Ok(LeaseTake::Held(row));
            }
            tracing::info!(lease = name, holder = %row.holder, "taking over the lease of a process that has exited");
            // Only that holder's row: if someone else took it meanwhile, this deletes nothing.
            self.release_lease(name, &row.holder).await?;
        }
        if self.try_acquire_lease(name, &holder, ttl).await? {
            return Ok(LeaseTake::Taken);
        }
        match self.get_lease(name).await? {
            Some(row) => Ok(LeaseTake::Held(row)),
            None => Err(StoreError::Invalid {
                op: "take_lease",
                detail: format!("the lease {name} keeps changing hands; try again"),
            }),
        }
    }

    /// Removes stale lease rows: expired ones, and those of processes of this host (as seen
    /// from `me`) that no longer exist. A lease renewed or taken over meanwhile is kept (each
    /// delete names the holder and re-checks the expiry). Returns how many were removed.
    pub async fn clean_stale_leases(&self, me: &Holder) -> Result<u64, StoreError> {
        const OP: &str = "clean_stale_leases";
        let at = now();
        let expired = leases::Entity::delete_many()
            .filter(leases::Column::ExpiresAt.lt(at))
            .exec(&self.db)
            .await
            .map_err(self.db_err(OP, TABLE))?
            .rows_affected;
        let mut dead = 0;
        for row in self.list_leases().await? {
            let gone =
                Holder::parse(&row.holder).is_some_and(|h| h.liveness_from(me) == Liveness::Gone);
            if gone && self.release_lease(&row.name, &row.holder).await? {
                dead += 1;
            }
        }
        Ok(expired + dead)
    }

    /// Takes the lease `name` for `holder` until now + `ttl`, if it is free, already held by
    /// `holder` (then this renews it, keeping `acquired_at`) or expired (a takeover). Returns
    /// false, changing nothing, when another holder has it. One atomic statement: of any number
    /// of stores contending, exactly one wins.
    pub async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        const OP: &str = "try_acquire_lease";
        check_names(OP, [name], holder)?;
        let (at, expires) = expiry(OP, ttl)?;
        acquire(&self.db, name, holder, at, expires)
            .await
            .map_err(self.db_err(OP, TABLE))
    }

    /// [`try_acquire_lease`](Store::try_acquire_lease) for each of `names`, in one
    /// transaction (names are taken in sorted order, so two batches never deadlock). Returns the
    /// names acquired, in the order given (duplicates once); the others are held by someone else.
    pub async fn try_acquire_leases(
        &self,
        names: &[String],
        holder: &str,
        ttl: Duration,
    ) -> Result<Vec<String>, StoreError> {
        const OP: &str = "try_acquire_leases";
        check_names(OP, names.iter().map(String::as_str), holder)?;
        let (at, expires) = expiry(OP, ttl)?;
        let mut sorted: Vec<&str> = names.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.is_empty() {
            return Ok(Vec::new());
        }
        let err = self.db_err(OP, TABLE);
        let txn = self.begin_write(Area::Leases).await.map_err(&err)?;
        let mut acquired = std::collections::HashSet::new();
        for name in sorted {
            if acquire(&txn, name, holder, at, expires)
                .await
                .map_err(&err)?
            {
                acquired.insert(name);
            }
        }
        txn.commit().await.map_err(&err)?;
        let mut out = Vec::with_capacity(acquired.len());
        for name in names {
            if acquired.remove(name.as_str()) {
                out.push(name.clone());
            }
        }
        Ok(out)
    }

    /// Extends `holder`'s lease on `name` to now + `ttl`. Returns false if the lease is lost:
    /// gone, or held by someone else. A lease of `holder` that expired but was not taken over
    /// is renewed (nobody else acted on it in between).
    pub async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        const OP: &str = "renew_lease";
        let (at, expires) = expiry(OP, ttl)?;
        let result = leases::Entity::update_many()
            .col_expr(leases::Column::RenewedAt, Expr::value(at))
            .col_expr(leases::Column::ExpiresAt, Expr::value(expires))
            .filter(leases::Column::Name.eq(name))
            .filter(leases::Column::Holder.eq(holder))
            .exec(&self.db)
            .await
            .map_err(self.db_err(OP, TABLE))?;
        Ok(result.rows_affected > 0)
    }

    /// Gives up `holder`'s lease on `name`. Returns false if `holder` did not hold it (another
    /// holder's lease is never released).
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<bool, StoreError> {
        let result = leases::Entity::delete_many()
            .filter(leases::Column::Name.eq(name))
            .filter(leases::Column::Holder.eq(holder))
            .exec(&self.db)
            .await
            .map_err(self.db_err("release_lease", TABLE))?;
        Ok(result.rows_affected > 0)
    }

    /// Gives up every lease of `holder` (expired ones included), as a process does when it
    /// stops. Returns how many there were.
    pub async fn release_all_leases(&self, holder: &str) -> Result<u64, StoreError> {
        let result = leases::Entity::delete_many()
            .filter(leases::Column::Holder.eq(holder))
            .exec(&self.db)
            .await
            .map_err(self.db_err("release_all_leases", TABLE))?;
        Ok(result.rows_affected)
    }

    /// The lease on `name`, if there is a row (it may have expired).
    pub async fn get_lease(&self, name: &str) -> Result<Option<LeaseRow>, StoreError> {
        Ok(leases::Entity::find_by_id(name.to_string())
            .one(&self.db)
            .await
            .map_err(self.db_err("get_lease", TABLE))?
            .map(lease_row))
    }

    /// All recorded leases by name, expired ones included (see [`LeaseRow::is_expired_at`]).
    pub async fn list_leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        Ok(leases::Entity::find()
            .order_by_asc(leases::Column::Name)
            .all(&self.db)
            .await
            .map_err(self.db_err("list_leases", TABLE))?
            .into_iter()
            .map(lease_row)
            .collect())
    }
}

/// The compare-and-set upsert; true if the lease is now `holder`'s.
async fn acquire<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    holder: &str,
    at: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let current = |col: leases::Column| Expr::col((leases::Entity, col));
    let ours = current(leases::Column::Holder).eq(holder);
    let rows = leases::Entity::insert(leases::ActiveModel {
        name: Set(name.to_string()),
        holder: Set(holder.to_string()),
        acquired_at: Set(at),
        renewed_at: Set(at),
        expires_at: Set(expires),
    })
    .on_conflict(
        OnConflict::column(leases::Column::Name)
            // SET expressions see the row as it was: a renewal keeps `acquired_at`.
            .value(
                leases::Column::AcquiredAt,
                Expr::case(ours.clone(), current(leases::Column::AcquiredAt)).finally(at),
            )
            .value(leases::Column::Holder, holder)
            .value(leases::Column::RenewedAt, at)
            .value(leases::Column::ExpiresAt, expires)
            .action_and_where(ours.or(current(leases::Column::ExpiresAt).lt(at)))
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(rows > 0)
}

/// Now and now + `ttl`, at the precision both backends keep.
fn expiry(op: &'static str, ttl: Duration) -> Result<(DateTime<Utc>, DateTime<Utc>), StoreError> {
    let at = now();
    let expires = chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|ttl| at.checked_add_signed(ttl))
        .ok_or_else(|| StoreError::Invalid {
            op,
            detail: format!("lease ttl {ttl:?} is too long"),
        })?;
    Ok((at, expires.trunc_subsecs(6)))
}

fn check_names<'a>(
    op: &'static str,
    names: impl IntoIterator<Item = &'a str>,
    holder: &str,
) -> Result<(), StoreError> {
    if holder.is_empty() {
        return Err(StoreError::Invalid {
            op,
            detail: "the lease holder is empty".to_string(),
        });
    }
    if names.into_iter().any(str::is_empty) {
        return Err(StoreError::Invalid {
            op,
            detail: "a lease name is empty".to_string(),
        });
    }
    Ok(())
}

fn lease_row(row: leases::Model) -> LeaseRow {
    LeaseRow {
        name: row.name,
        holder: row.holder,
        acquired_at: row.acquired_at,
        renewed_at: row.renewed_at,
        expires_at: row.expires_at,
    }
}
