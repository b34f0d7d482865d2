//! Secrets, as ciphertext only: the store takes and returns [`Sealed`] values and never sees a
//! key or a plaintext. Each set gives the secret a new version (a UUID), which lets consumers
//! notice that a value changed without decrypting it.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, EntityTrait, QueryOrder};
use uuid::Uuid;

use ballast_secrets::Sealed;

use crate::entity::secrets;
use crate::{Area, Store, StoreError, now};

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

impl Store {
    /// Stores (or replaces) a sealed secret under `name`, with a new version. Returns the
    /// version.
    pub async fn put_secret(&self, name: &str, sealed: &Sealed) -> Result<Uuid, StoreError> {
        const OP: &str = "put_secret";
        if name.is_empty() {
            return Err(StoreError::Invalid {
                op: OP,
                detail: "a secret needs a name".to_string(),
            });
        }
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
        .exec_without_returning(&self.db)
        .await
        .map_err(self.db_err(OP, TABLE))?;
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

    /// Deletes a secret. Returns false if there was none by that name.
    pub async fn delete_secret(&self, name: &str) -> Result<bool, StoreError> {
        let result = secrets::Entity::delete_by_id(name.to_string())
            .exec(&self.db)
            .await
            .map_err(self.db_err("delete_secret", TABLE))?;
        Ok(result.rows_affected > 0)
    }

    /// Re-encrypts every secret with `f` (for `ballast secret rotate-key`) in one transaction:
    /// if `f` fails for any secret, or anything else fails, nothing changes. Versions are kept:
    /// the values are the same. Server credentials are sealed with the same key, so they are
    /// re-encrypted too, in the same transaction: `f` sees each as a secret named
    /// `server/<server>/<purpose>`, the name it was sealed under
    /// ([`ServerCredential::associated_data`](crate::ServerCredential::associated_data)).
    /// Returns the number of secrets and credentials re-encrypted.
    pub async fn rewrap_secrets<E>(
        &self,
        f: impl Fn(&StoredSecret) -> Result<Sealed, E> + Send + Sync,
    ) -> Result<usize, StoreError>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let err = self.db_err("rewrap_secrets", TABLE);
        let txn = self.begin_write(Area::Secrets).await.map_err(&err)?;
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
