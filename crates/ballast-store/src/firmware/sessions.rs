//! `redfish_sessions`: one Redfish session per BMC, shared by every process that talks to it (an
//! iDRAC has few sessions and locks the account out when they run out). The token is sealed by
//! the caller with the store's key under [`redfish_session_name`], as server credentials are:
//! the store never sees it in clear. `ballast secret rotate-key` re-encrypts the tokens with the
//! secrets; a token that cannot be opened any more is simply replaced by a new login.

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
};

use ballast_secrets::Sealed;

use crate::entity::redfish_sessions;
use crate::{Store, StoreError, StoredSecret, new_id, now};

const TABLE: &str = "redfish_sessions";

/// The name a host's session token is sealed under (the AEAD's associated data), so a token
/// moved to another host's row fails to open. Secret names are DNS-1123 labels and have no `/`,
/// so this can never be a secret's name.
pub fn redfish_session_name(host: &str) -> String {
    format!("redfish-session/{host}")
}

/// A host's Redfish session as stored. `Debug` shows no ciphertext.
#[derive(Clone, PartialEq, Eq)]
pub struct RedfishSession {
    pub host: String,
    /// The BMC's base URL the session belongs to (a session is not valid elsewhere).
    pub base_url: String,
    /// The session's URI, to log out.
    pub location: Option<String>,
    /// The token, sealed under [`redfish_session_name`]`(host)`.
    pub sealed: Sealed,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for RedfishSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedfishSession")
            .field("host", &self.host)
            .field("base_url", &self.base_url)
            .field("location", &self.location)
            .field("key_id", &self.sealed.key_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Stores (or replaces) `host`'s session: `sealed` must be the token sealed under
    /// [`redfish_session_name`]`(host)`.
    pub async fn put_redfish_session(
        &self,
        host: &str,
        base_url: &str,
        location: Option<&str>,
        sealed: &Sealed,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const OP: &str = "put_redfish_session";
        if host.is_empty() || base_url.is_empty() {
            return Err(StoreError::Invalid {
                op: OP,
                detail: "the host and the BMC's URL must not be empty".to_string(),
            });
        }
        let at = now();
        use redfish_sessions::Column as C;
        redfish_sessions::Entity::insert(redfish_sessions::ActiveModel {
            id: Set(new_id()),
            host: Set(host.to_string()),
            base_url: Set(base_url.to_string()),
            location: Set(location.map(str::to_string)),
            key_id: Set(sealed.key_id.clone()),
            nonce: Set(sealed.nonce.clone()),
            ciphertext: Set(sealed.ciphertext.clone()),
            expires_at: Set(expires_at.trunc_subsecs(6)),
            created_at: Set(at),
            updated_at: Set(at),
        })
        .on_conflict(
            OnConflict::column(C::Host)
                .update_columns([
                    C::BaseUrl,
                    C::Location,
                    C::KeyId,
                    C::Nonce,
                    C::Ciphertext,
                    C::ExpiresAt,
                    C::CreatedAt,
                    C::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await
        .map_err(self.db_err(OP, TABLE))?;
        Ok(())
    }

    /// `host`'s session, if one is stored and has not expired at `at`.
    pub async fn get_redfish_session(
        &self,
        host: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<RedfishSession>, StoreError> {
        Ok(redfish_sessions::Entity::find()
            .filter(redfish_sessions::Column::Host.eq(host))
            .filter(redfish_sessions::Column::ExpiresAt.gt(at))
            .one(&self.db)
            .await
            .map_err(self.db_err("get_redfish_session", TABLE))?
            .map(session))
    }

    /// Every stored session (expired ones too), by host: what a shutdown logs out of.
    pub async fn list_redfish_sessions(&self) -> Result<Vec<RedfishSession>, StoreError> {
        Ok(redfish_sessions::Entity::find()
            .order_by_asc(redfish_sessions::Column::Host)
            .all(&self.db)
            .await
            .map_err(self.db_err("list_redfish_sessions", TABLE))?
            .into_iter()
            .map(session)
            .collect())
    }

    /// Forgets `host`'s session (after logging out, or when the BMC refused it).
    pub async fn delete_redfish_session(&self, host: &str) -> Result<bool, StoreError> {
        let result = redfish_sessions::Entity::delete_many()
            .filter(redfish_sessions::Column::Host.eq(host))
            .exec(&self.db)
            .await
            .map_err(self.db_err("delete_redfish_session", TABLE))?;
        Ok(result.rows_affected > 0)
    }

    /// Forgets the sessions expired at `at`; returns how many.
    pub async fn delete_expired_redfish_sessions(
        &self,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let result = redfish_sessions::Entity::delete_many()
            .filter(redfish_sessions::Column::ExpiresAt.lte(at))
            .exec(&self.db)
            .await
            .map_err(self.db_err("delete_expired_redfish_sessions", TABLE))?;
        Ok(result.rows_affected)
    }

    /// Re-encrypts every session token with `f`, inside the transaction of
    /// [`rewrap_secrets`](Store::rewrap_secrets): `f` sees each as a secret named
    /// [`redfish_session_name`]`(host)`. Returns how many were re-encrypted.
    pub(crate) async fn rewrap_redfish_sessions<F, E>(
        &self,
        txn: &DatabaseTransaction,
        f: &F,
        at: DateTime<Utc>,
    ) -> Result<usize, StoreError>
    where
        F: Fn(&StoredSecret) -> Result<Sealed, E> + Send + Sync + ?Sized,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let err = self.db_err("rewrap_secrets", TABLE);
        let rows = redfish_sessions::Entity::find()
            .order_by_asc(redfish_sessions::Column::Host)
            .all(txn)
            .await
            .map_err(&err)?;
        let count = rows.len();
        for row in rows {
            let secret = StoredSecret {
                name: redfish_session_name(&row.host),
                version: self.parse_uuid(TABLE, &row.id)?,
                sealed: Sealed {
                    key_id: row.key_id,
                    nonce: row.nonce,
                    ciphertext: row.ciphertext,
                },
                created_at: row.created_at,
                updated_at: row.updated_at,
            };
            // An early return drops the transaction, which rolls back what was written.
            let sealed = f(&secret).map_err(|e| StoreError::Rewrap {
                name: secret.name.clone(),
                error: e.into(),
            })?;
            redfish_sessions::Entity::update(redfish_sessions::ActiveModel {
                id: Set(row.id),
                key_id: Set(sealed.key_id),
                nonce: Set(sealed.nonce),
                ciphertext: Set(sealed.ciphertext),
                updated_at: Set(at),
                ..Default::default()
            })
            .exec_without_returning(txn)
            .await
            .map_err(&err)?;
        }
        Ok(count)
    }
}

fn session(row: redfish_sessions::Model) -> RedfishSession {
    RedfishSession {
        host: row.host,
        base_url: row.base_url,
        location: row.location,
        sealed: Sealed {
            key_id: row.key_id,
            nonce: row.nonce,
            ciphertext: row.ciphertext,
        },
        expires_at: row.expires_at,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}
