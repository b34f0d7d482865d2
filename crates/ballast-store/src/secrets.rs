//! Secrets, as ciphertext only: the store takes and returns [`Sealed`] values and never sees a
//! key or a plaintext. Each set gives the secret a new version (a UUID), which lets consumers
//! notice that a value changed without decrypting it.
//!
//! Setting, removing and re-encrypting secrets append an audit row in the same transaction
//! (the secret's name, version and key id; never a value). `store_meta.key_id` records which
//! key seals this store's values, so a command about to create a key can see that the store
//! already depends on another one ([`Store::sealed_refs`] names what that key opens).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use ballast_secrets::Sealed;

use crate::entity::{secrets, server_credentials, store_meta};
use crate::{Area, ServerCredential, Store, StoreError, audit, now};

const TABLE: &str = "secrets";

/// A stored secret: its sealed value and metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSecret {
    pub name: String,
    pub sealed: Sealed,
    /// Changes whenever the value is set (not when it is re-encrypted under a new key).
    pub version: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What can be shown about a secret without its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInfo {
    pub name: String,
    pub version: Uuid,
    /// The id of the key that sealed it.
    pub key_id: String,
    pub updated_at: DateTime<Utc>,
}

/// A value sealed by this store's key: a secret, or a server credential (named
/// `server/<server>/<purpose>`), with the id of the key that sealed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRef {
    pub name: String,
    pub key_id: String,
}

impl Store {
    /// Stores (or replaces) a sealed secret under `name`, with a new version, and appends an
    /// audit row (`secret set`, by `actor`: name, version and key id) in the same transaction.
    /// Returns the version.
    pub async fn put_secret(
        &self,
        name: &str,
        sealed: &Sealed,
        actor: &str,
    ) -> Result<Uuid, StoreError> {
        const OP: &str = "put_secret";
        if name.is_empty() {
            return Err(StoreError::Invalid {
                op: OP,
                detail: "a secret needs a name".to_string(),
            });
        }
        let err = self.db_err(OP, TABLE);
        let txn = self
            .begin_write_areas(&[Area::Secrets, Area::Audit])
            .await
            .map_err(&err)?;
        let version = Uuid::now_v7();
        let at = now();
        secrets::Entity::insert(secrets::ActiveModel {
            name: Set(name.to_string()),
            key_id: Set(sealed.key_id.clone()),
            nonce: Set(sealed.nonce.clone()),
            ciphertext: Set(sealed.ciphertext.clone()),
            version: Set(version.to_string()),
            created_at: Set(at),
            updated_at: Set(at),
        })
        .on_conflict(
            // created_at is left out: it keeps the time the secret was first set.
            OnConflict::column(secrets::Column::Name)
                .update_columns([
                    secrets::Column::KeyId,
                    secrets::Column::Nonce,
                    secrets::Column::Ciphertext,
                    secrets::Column::Version,
                    secrets::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await
        .map_err(&err)?;
        let summary = format!(
            "secret `{name}` set: version {version}, sealed with key {}",
            sealed.key_id
        );
        audit::append_in(&txn, actor, "secret set", &summary, None)
            .await
            .map_err(self.db_err(OP, "audit_log"))?;
        txn.commit().await.map_err(&err)?;
        Ok(version)
    }

    /// A stored secret, if there is one by that name.
    pub async fn get_secret(&self, name: &str) -> Result<Option<StoredSecret>, StoreError> {
        secrets::Entity::find_by_id(name.to_string())
            .one(&self.db)
            .await
            .map_err(self.db_err("get_secret", TABLE))?
            .map(|row| self.stored_secret(row))
            .transpose()
    }

    /// Every secret's name, version and key id, by name; no values.
    pub async fn list_secrets(&self) -> Result<Vec<SecretInfo>, StoreError> {
        secrets::Entity::find()
            .order_by_asc(secrets::Column::Name)
            .all(&self.db)
            .await
            .map_err(self.db_err("list_secrets", TABLE))?
            .into_iter()
            .map(|row| {
                Ok(SecretInfo {
                    version: self.parse_uuid(TABLE, &row.version)?,
                    name: row.name,
                    key_id: row.key_id,
                    updated_at: row.updated_at,
                })
            })
            .collect()
    }

    /// Deletes a secret, appending an audit row (`secret rm`, by `actor`: the name and the
    /// version removed) in the same transaction. Returns false, changing nothing, if there was
    /// none by that name.
    pub async fn delete_secret(&self, name: &str, actor: &str) -> Result<bool, StoreError> {
        const OP: &str = "delete_secret";
        let err = self.db_err(OP, TABLE);
        let txn = self
            .begin_write_areas(&[Area::Secrets, Area::Audit])
            .await
            .map_err(&err)?;
        let Some(row) = secrets::Entity::find_by_id(name.to_string())
            .one(&txn)
            .await
            .map_err(&err)?
        else {
            return Ok(false);
        };
        secrets::Entity::delete_by_id(name.to_string())
            .exec(&txn)
            .await
            .map_err(&err)?;
        let summary = format!("secret `{name}` removed (was version {})", row.version);
        audit::append_in(&txn, actor, "secret rm", &summary, None)
            .await
            .map_err(self.db_err(OP, "audit_log"))?;
        txn.commit().await.map_err(&err)?;
        Ok(true)
    }

    /// The id of the key that seals this store's values, as recorded on first use.
    pub async fn recorded_key_id(&self) -> Result<Option<String>, StoreError> {
        Ok(store_meta::Entity::find_by_id(1)
            .one(&self.db)
            .await
            .map_err(self.db_err("recorded_key_id", "store_meta"))?
            .and_then(|row| row.key_id))
    }

    /// Records `key_id` as this store's key if none is recorded yet (compare-and-set: of two
    /// processes recording different keys, the first wins). Returns the id recorded now,
    /// which is another one if the store already had one.
    pub async fn record_key_id(&self, key_id: &str) -> Result<String, StoreError> {
        const OP: &str = "record_key_id";
        store_meta::Entity::update_many()
            .col_expr(store_meta::Column::KeyId, Expr::value(Some(key_id)))
            .filter(store_meta::Column::Id.eq(1))
            .filter(store_meta::Column::KeyId.is_null())
            .exec(&self.db)
            .await
            .map_err(self.db_err(OP, "store_meta"))?;
        self.recorded_key_id()
            .await?
            .ok_or_else(|| StoreError::NotFound {
                op: OP,
                what: "the store_meta row".to_string(),
            })
    }

    /// Makes `key_id` this store's key, replacing the one recorded (`secret set --new-key`
    /// after the key file was lost), with an audit row (`secret new-key`, by `actor`) naming
    /// the values sealed with another key, which can no longer be read.
    pub async fn replace_key_id(&self, key_id: &str, actor: &str) -> Result<(), StoreError> {
        const OP: &str = "replace_key_id";
        let orphaned: Vec<String> = self
            .sealed_refs()
            .await?
            .into_iter()
            .filter(|r| r.key_id != key_id)
            .map(|r| r.name)
            .collect();
        let err = self.db_err(OP, "store_meta");
        let txn = self
            .begin_write_areas(&[Area::Meta, Area::Audit])
            .await
            .map_err(&err)?;
        let previous = store_meta::Entity::find_by_id(1)
            .one(&txn)
            .await
            .map_err(&err)?
            .and_then(|row| row.key_id);
        store_meta::Entity::update_many()
            .col_expr(store_meta::Column::KeyId, Expr::value(Some(key_id)))
            .filter(store_meta::Column::Id.eq(1))
            .exec(&txn)
            .await
            .map_err(&err)?;
        let summary = format!(
            "new key {key_id} replaces key {}; {} value(s) sealed with another key can no longer be read{}",
            previous.as_deref().unwrap_or("(none recorded)"),
            orphaned.len(),
            if orphaned.is_empty() {
                String::new()
            } else {
                format!(": {}", orphaned.join(", "))
            }
        );
        audit::append_in(&txn, actor, "secret new-key", &summary, None)
            .await
            .map_err(self.db_err(OP, "audit_log"))?;
        txn.commit().await.map_err(&err)
    }

    /// Every sealed value (secrets by name, then server credentials as
    /// `server/<server>/<purpose>`) with the id of the key that sealed it; no ciphertext.
    pub async fn sealed_refs(&self) -> Result<Vec<SealedRef>, StoreError> {
        let mut out: Vec<SealedRef> = self
            .list_secrets()
            .await?
            .into_iter()
            .map(|s| SealedRef {
                name: s.name,
                key_id: s.key_id,
            })
            .collect();
        let credentials = server_credentials::Entity::find()
            .order_by_asc(server_credentials::Column::Server)
            .order_by_asc(server_credentials::Column::Purpose)
            .all(&self.db)
            .await
            .map_err(self.db_err("sealed_refs", "server_credentials"))?;
        out.extend(credentials.into_iter().map(|c| SealedRef {
            name: ServerCredential::associated_data(&c.server, &c.purpose),
            key_id: c.key_id,
        }));
        Ok(out)
    }

    /// Re-encrypts every secret with `f` (for `ballast secret rotate-key`) in one transaction:
    /// if `f` fails for any secret, or anything else fails, nothing changes. Versions are kept:
    /// the values are the same. Server credentials are sealed with the same key, so they are
    /// re-encrypted too, in the same transaction: `f` sees each as a secret named
    /// `server/<server>/<purpose>`, the name it was sealed under
    /// ([`ServerCredential::associated_data`](crate::ServerCredential::associated_data)).
    /// The same transaction records `new_key_id` as the store's key and appends an audit row
    /// (`secret rotate-key`, by `actor`). Returns the number of secrets and credentials
    /// re-encrypted.
    pub async fn rewrap_secrets<E>(
        &self,
        new_key_id: &str,
        actor: &str,
        f: impl Fn(&StoredSecret) -> Result<Sealed, E> + Send + Sync,
    ) -> Result<usize, StoreError>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        const OP: &str = "rewrap_secrets";
        let err = self.db_err(OP, TABLE);
        let txn = self
            .begin_write_areas(&[Area::Meta, Area::Secrets, Area::Audit])
            .await
            .map_err(&err)?;
        let previous = store_meta::Entity::find_by_id(1)
            .one(&txn)
            .await
            .map_err(&err)?
            .and_then(|row| row.key_id);
        let rows = secrets::Entity::find()
            .order_by_asc(secrets::Column::Name)
            .all(&txn)
            .await
            .map_err(&err)?;
        let count = rows.len();
        let at = now();
        for row in rows {
            let secret = self.stored_secret(row)?;
            // An early return drops the transaction, which rolls back what was written.
            let sealed = f(&secret).map_err(|e| StoreError::Rewrap {
                name: secret.name.clone(),
                error: e.into(),
            })?;
            secrets::Entity::update(secrets::ActiveModel {
                name: Set(secret.name.clone()),
                key_id: Set(sealed.key_id),
                nonce: Set(sealed.nonce),
                ciphertext: Set(sealed.ciphertext),
                updated_at: Set(at),
                ..Default::default()
            })
            .exec_without_returning(&txn)
            .await
            .map_err(&err)?;
        }
        let credentials = self.rewrap_server_credentials(&txn, &f, at).await?;
        // Redfish session tokens are sealed with the same key; they are not counted or named
        // in the audit row: they are short-lived logins, not values a user set.
        self.rewrap_redfish_sessions(&txn, &f, at).await?;
        store_meta::Entity::update_many()
            .col_expr(store_meta::Column::KeyId, Expr::value(Some(new_key_id)))
            .filter(store_meta::Column::Id.eq(1))
            .exec(&txn)
            .await
            .map_err(self.db_err(OP, "store_meta"))?;
        let summary = format!(
            "re-encrypted {count} secret(s) and {credentials} server credential(s) with key {new_key_id} (was {})",
            previous.as_deref().unwrap_or("not recorded")
        );
        audit::append_in(&txn, actor, "secret rotate-key", &summary, None)
            .await
            .map_err(self.db_err(OP, "audit_log"))?;
        txn.commit().await.map_err(&err)?;
        Ok(count + credentials)
    }

    fn stored_secret(&self, row: secrets::Model) -> Result<StoredSecret, StoreError> {
        Ok(StoredSecret {
            version: self.parse_uuid(TABLE, &row.version)?,
            sealed: Sealed {
                key_id: row.key_id,
                nonce: row.nonce,
                ciphertext: row.ciphertext,
            },
            name: row.name,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}
