//! Encryption of the secrets ballast keeps in its database (`ballast secret set`).
//!
//! One symmetric key (32 random bytes, stored hex-encoded in a key file readable only by its
//! owner) seals every secret with XChaCha20-Poly1305. The secret's name is the associated data,
//! so a ciphertext copied onto another secret's row fails to open instead of silently yielding
//! the wrong value. Each sealed value records the id of the key that sealed it (a prefix of the
//! key's SHA-256, safe to show and store), so opening with the wrong key file gives an error that
//! says so instead of a bare authentication failure.
//!
//! This crate does no I/O except reading and writing the key file; the database side lives in
//! `ballast-store`, which only ever sees [`Sealed`] values.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::{Aead, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;
/// Length of an XChaCha20-Poly1305 nonce in bytes.
pub const NONCE_LEN: usize = 24;
/// File name of the key inside the state directory or `$CREDENTIALS_DIRECTORY`.
pub const KEY_FILE_NAME: &str = "ballast.key";
/// Number of hex characters of a key id.
const KEY_ID_LEN: usize = 16;

/// Everything that can go wrong with keys and secrets. Messages never contain key bytes or
/// plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// No file at the key path. Callers that know the store add which key it needs (see
    /// `ballast-engine`'s key handling); creating a new key here would orphan every value
    /// sealed with the lost one, so this message does not suggest it.
    #[error(
        "the key file {} does not exist (point --key-file / BALLAST_KEY_FILE at the key file; \
         `ballast init` creates one for a new store)",
        path.display()
    )]
    KeyFileMissing { path: PathBuf },

    #[error("cannot read the key file {}: {error}", path.display())]
    KeyFileRead { path: PathBuf, error: io::Error },

    #[error(
        "the key file {} is not a ballast key: {reason} (a key file holds 64 hex characters \
         and a newline)",
        path.display()
    )]
    KeyFileMalformed { path: PathBuf, reason: String },

    #[error("the key file {} already exists; refusing to overwrite a key", path.display())]
    KeyFileExists { path: PathBuf },

    #[error("cannot write the key file {}: {error}", path.display())]
    KeyFileWrite { path: PathBuf, error: io::Error },

    #[error("the operating system's random number generator failed: {0}")]
    Random(String),

    #[error(
        "secret `{name}` was encrypted with key {sealed_key_id} but {} holds key {key_id}; \
         use the key file it was written with",
        describe_key_source(.key_path.as_deref())
    )]
    WrongKey {
        name: String,
        sealed_key_id: String,
        key_id: String,
        key_path: Option<PathBuf>,
    },

    #[error("secret `{name}` failed authentication (corrupted or tampered)")]
    Authentication { name: String },

    #[error("secret `{name}` is malformed: {reason}")]
    Malformed { name: String, reason: String },

    #[error("secret `{name}` could not be encrypted (value too large?)")]
    Encrypt { name: String },
}

fn describe_key_source(path: Option<&Path>) -> String {
    match path {
        Some(path) => format!("the key file {}", path.display()),
        None => "the key in use".to_string(),
    }
}

/// A secret as stored: which key sealed it, the nonce, and the ciphertext (with its tag).
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

// Ciphertext is not secret, but dumping it helps nobody; lengths are enough to debug with.
impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("nonce_len", &self.nonce.len())
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// Where a [`SecretKey`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Made in memory by [`SecretKey::generate`] or [`SecretKey::from_bytes`]; not saved.
    Generated,
    /// Read from an existing key file.
    Loaded,
    /// Generated and written to a new key file by [`SecretKey::load_or_create`].
    Created,
}

/// The key that seals secrets. Its bytes are wiped from memory when it is dropped.
pub struct SecretKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    id: String,
    path: Option<PathBuf>,
    origin: KeyOrigin,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("key_id", &self.id)
            .field("path", &self.path)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    /// A new random key, not yet saved anywhere.
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails, which leaves nothing safe to
    /// do; [`SecretKey::try_generate`] returns that as an error instead.
    pub fn generate() -> SecretKey {
        match SecretKey::try_generate() {
            Ok(key) => key,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`SecretKey::generate`], returning a failure of the random number generator as an error.
    pub fn try_generate() -> Result<SecretKey, SecretError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        OsRng
            .try_fill_bytes(bytes.as_mut())
            .map_err(|e| SecretError::Random(e.to_string()))?;
        Ok(SecretKey::from_zeroizing(bytes, None, KeyOrigin::Generated))
    }

    /// A key from raw bytes (tests, and tools that import a key).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> SecretKey {
        let mut source = bytes;
        let key = SecretKey::from_zeroizing(Zeroizing::new(source), None, KeyOrigin::Generated);
        source.zeroize();
        key
    }

    fn from_zeroizing(
        bytes: Zeroizing<[u8; KEY_LEN]>,
        path: Option<PathBuf>,
        origin: KeyOrigin,
    ) -> SecretKey {
        let digest = Sha256::digest(bytes.as_ref());
        let mut id = hex::encode(digest);
        id.truncate(KEY_ID_LEN);
        SecretKey {
            bytes,
            id,
            path,
            origin,
        }
    }

    /// Reads an existing key file. A missing file is an error that says how to create one.
    pub fn load(path: &Path) -> Result<SecretKey, SecretError> {
        let text = match fs::read(path) {
            Ok(text) => Zeroizing::new(text),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(SecretError::KeyFileMissing {
                    path: path.to_path_buf(),
                });
            }
            Err(error) => {
                return Err(SecretError::KeyFileRead {
                    path: path.to_path_buf(),
                    error,
                });
            }
        };
        let bytes = parse_key_file(&text).map_err(|reason| SecretError::KeyFileMalformed {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(SecretKey::from_zeroizing(
            bytes,
            Some(path.to_path_buf()),
            KeyOrigin::Loaded,
        ))
    }

    /// Reads the key file, or creates it (and its directory) with a new key if it does not
    /// exist. An existing key file is never overwritten, even when two processes race here.
    pub fn load_or_create(path: &Path) -> Result<SecretKey, SecretError> {
        match SecretKey::load(path) {
            Err(SecretError::KeyFileMissing { .. }) => {}
            other => return other,
        }
        let mut key = SecretKey::try_generate()?;
        match key.write_new(path) {
            Ok(()) => {
                key.path = Some(path.to_path_buf());
                key.origin = KeyOrigin::Created;
                Ok(key)
            }
            // Another process created it between our read and our write: theirs wins.
            Err(SecretError::KeyFileExists { .. }) => SecretKey::load(path),
            Err(e) => Err(e),
        }
    }

    /// Writes this key to a new key file (mode 0600; the directory is created with mode 0700
    /// if missing). Fails with [`SecretError::KeyFileExists`] if the file exists. The file
    /// appears complete or not at all: it is written under a temporary name and hard-linked
    /// into place, which unlike a rename never replaces an existing file.
    pub fn write_new(&self, path: &Path) -> Result<(), SecretError> {
        let write_err = |error: io::Error| SecretError::KeyFileWrite {
            path: path.to_path_buf(),
            error,
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(write_err)?;
        if path.exists() {
            return Err(SecretError::KeyFileExists {
                path: path.to_path_buf(),
            });
        }

        let mut contents = Zeroizing::new(hex::encode(self.bytes.as_ref()));
        contents.push('\n');

        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| KEY_FILE_NAME.to_string());
        let tmp = dir.join(format!(
            ".{file_name}.tmp-{}-{}",
            std::process::id(),
            &self.id[..8]
        ));
        write_private_file(&tmp, contents.as_bytes()).map_err(write_err)?;

        let linked = fs::hard_link(&tmp, path);
        // The temporary name has served its purpose whatever happened.
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                return Err(SecretError::KeyFileExists {
                    path: path.to_path_buf(),
                });
            }
            // File systems without hard links: create the file exclusively instead. Still never
            // overwrites; only loses the all-or-nothing appearance.
            Err(_) => match write_private_file(path, contents.as_bytes()) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(SecretError::KeyFileExists {
                        path: path.to_path_buf(),
                    });
                }
                Err(error) => return Err(write_err(error)),
            },
        }
        // Make the new directory entry durable; failure here is not worth failing the write.
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// First 16 hex characters of SHA-256 of the key: identifies a key without revealing it.
    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// The key file this key was read from or written to, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Where this key came from.
    pub fn origin(&self) -> KeyOrigin {
        self.origin
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.bytes.as_ref().into())
    }

    /// Seals `plaintext` for the secret called `name` with a fresh random nonce.
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails, or `plaintext` exceeds the
    /// cipher's limit of 256 GiB; [`SecretKey::try_encrypt`] returns those as errors instead.
    pub fn encrypt(&self, name: &str, plaintext: &[u8]) -> Sealed {
        match self.try_encrypt(name, plaintext) {
            Ok(sealed) => sealed,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`SecretKey::encrypt`], returning failures as errors.
    pub fn try_encrypt(&self, name: &str, plaintext: &[u8]) -> Result<Sealed, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|e| SecretError::Random(e.to_string()))?;
        let ciphertext = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Encrypt {
                name: name.to_string(),
            })?;
        Ok(Sealed {
            key_id: self.id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Opens a sealed secret. The key id is compared first, so a wrong key file is reported as
    /// such rather than as tampering.
    pub fn decrypt(&self, name: &str, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        if sealed.key_id != self.id {
            return Err(SecretError::WrongKey {
                name: name.to_string(),
                sealed_key_id: sealed.key_id.clone(),
                key_id: self.id.clone(),
                key_path: self.path.clone(),
            });
        }
        if sealed.nonce.len() != NONCE_LEN {
            return Err(SecretError::Malformed {
                name: name.to_string(),
                reason: format!(
                    "nonce is {} bytes, expected {NONCE_LEN}",
                    sealed.nonce.len()
                ),
            });
        }
        self.cipher()
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: name.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SecretError::Authentication {
                name: name.to_string(),
            })
    }
}

/// Creates `path` exclusively with mode 0600 and writes `contents` durably.
fn write_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    // The umask can only remove bits from 0600, but be explicit: this file must be private.
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if written.is_err() {
        let _ = fs::remove_file(path);
    }
    written
}

/// Parses key file contents: 64 hex characters, optionally surrounded by whitespace. The error
/// describes the shape of the problem without echoing the contents.
fn parse_key_file(text: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "it is not text".to_string())?;
    let hex_text = text.trim();
    if hex_text.is_empty() {
        return Err("it is empty".to_string());
    }
    if hex_text.len() != KEY_LEN * 2 {
        return Err(format!(
            "expected {} hex characters, found {} characters",
            KEY_LEN * 2,
            hex_text.chars().count()
        ));
    }
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    hex::decode_to_slice(hex_text, bytes.as_mut())
        .map_err(|_| "it contains characters that are not hex digits".to_string())?;
    Ok(bytes)
}

/// Where the key file is: `explicit` (from `--key-file` or `BALLAST_KEY_FILE`, resolved by the
/// CLI) wins; else `$CREDENTIALS_DIRECTORY/ballast.key` when systemd passed the key as a
/// credential (`LoadCredential=`) and it exists; else `state_dir/ballast.key`.
pub fn resolve_key_path(explicit: Option<&Path>, state_dir: &Path) -> PathBuf {
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    resolve_key_path_with(explicit, state_dir, credentials.as_deref())
}

/// Where ballast looked for the key file at `chosen`, in the order [`resolve_key_path`] uses,
/// with what each place held: for messages about a missing key. Reads `BALLAST_KEY_FILE` and
/// `CREDENTIALS_DIRECTORY` to say which of them were set.
pub fn describe_key_search(chosen: &Path) -> String {
    describe_key_search_with(
        chosen,
        std::env::var_os("BALLAST_KEY_FILE")
            .map(PathBuf::from)
            .as_deref(),
        std::env::var_os("CREDENTIALS_DIRECTORY")
            .map(PathBuf::from)
            .as_deref(),
    )
}

/// [`describe_key_search`] with the environment passed in.
pub fn describe_key_search_with(
    chosen: &Path,
    env_key_file: Option<&Path>,
    credentials_dir: Option<&Path>,
) -> String {
    let env = match env_key_file {
        Some(path) => format!("BALLAST_KEY_FILE={}", path.display()),
        None => "BALLAST_KEY_FILE not set".to_string(),
    };
    let credentials = match credentials_dir.filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => {
            let candidate = dir.join(KEY_FILE_NAME);
            let found = if candidate.is_file() {
                "exists"
            } else {
                "does not exist"
            };
            format!("{} {found}", candidate.display())
        }
        None => "CREDENTIALS_DIRECTORY not set".to_string(),
    };
    format!(
        "ballast looked for the key at {}, taken from the first of: --key-file or \
         BALLAST_KEY_FILE ({env}); $CREDENTIALS_DIRECTORY/{KEY_FILE_NAME} under systemd \
         ({credentials}); .ballast/{KEY_FILE_NAME} in the working directory",
        chosen.display()
    )
}

/// [`resolve_key_path`] with the credentials directory passed in instead of read from the
/// environment.
pub fn resolve_key_path_with(
    explicit: Option<&Path>,
    state_dir: &Path,
    credentials_dir: Option<&Path>,
) -> PathBuf {
    if let Some(path) = explicit {
        return path.to_path_buf();
    }
    if let Some(dir) = credentials_dir.filter(|d| !d.as_os_str().is_empty()) {
        let candidate = dir.join(KEY_FILE_NAME);
        if candidate.is_file() {
            return candidate;
        }
    }
    state_dir.join(KEY_FILE_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::generate()
    }

    #[test]
    fn roundtrip() {
        let k = key();
        let sealed = k.encrypt("db-password", b"hunter2");
        assert_eq!(sealed.key_id, k.key_id());
        assert_eq!(sealed.nonce.len(), NONCE_LEN);
        assert_ne!(sealed.ciphertext, b"hunter2");
        let opened = k.decrypt("db-password", &sealed).expect("decrypt");
        assert_eq!(opened.as_slice(), b"hunter2");
    }

    #[test]
    fn nonces_differ_per_encryption() {
        let k = key();
        let a = k.encrypt("x", b"same");
        let b = k.encrypt("x", b"same");
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn key_id_is_sha256_prefix() {
        let k = SecretKey::from_bytes([7u8; KEY_LEN]);
        let expected = hex::encode(Sha256::digest([7u8; KEY_LEN]));
        assert_eq!(k.key_id(), &expected[..16]);
    }

    #[test]
    fn wrong_key_names_both_keys_and_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ballast.key");
        let writer = key();
        let sealed = writer.encrypt("db-password", b"hunter2");
        let reader = SecretKey::load_or_create(&path).expect("create key");
        let err = reader
            .decrypt("db-password", &sealed)
            .expect_err("must fail");
        assert!(matches!(err, SecretError::WrongKey { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("`db-password`"), "{msg}");
        assert!(msg.contains(writer.key_id()), "{msg}");
        assert!(msg.contains(reader.key_id()), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(
            msg.contains("use the key file it was written with"),
            "{msg}"
        );
    }

    #[test]
    fn tampered_ciphertext_fails_authentication() {
        let k = key();
        let mut sealed = k.encrypt("x", b"value");
        sealed.ciphertext[0] ^= 1;
        let err = k.decrypt("x", &sealed).expect_err("must fail");
        assert!(matches!(err, SecretError::Authentication { .. }));
        assert_eq!(
            err.to_string(),
            "secret `x` failed authentication (corrupted or tampered)"
        );

        let mut sealed = k.encrypt("x", b"value");
        sealed.nonce[3] ^= 0x80;
        assert!(matches!(
            k.decrypt("x", &sealed),
            Err(SecretError::Authentication { .. })
        ));

        let mut sealed = k.encrypt("x", b"value");
        sealed.nonce.pop();
        assert!(matches!(
            k.decrypt("x", &sealed),
            Err(SecretError::Malformed { .. })
        ));
    }

    #[test]
    fn ciphertext_is_bound_to_the_name() {
        let k = key();
        let sealed = k.encrypt("api-token", b"value");
        let err = k.decrypt("db-password", &sealed).expect_err("must fail");
        assert!(matches!(err, SecretError::Authentication { ref name } if name == "db-password"));
    }

    #[test]
    fn created_key_file_is_private_and_reloads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state/sub/ballast.key");
        let created = SecretKey::load_or_create(&path).expect("create");
        assert_eq!(created.origin(), KeyOrigin::Created);
        let meta = fs::metadata(&path).expect("stat");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let text = fs::read_to_string(&path).expect("read");
        assert_eq!(text.len(), 65);
        assert!(text.ends_with('\n'));
        assert!(text[..64].chars().all(|c| c.is_ascii_hexdigit()));

        let loaded = SecretKey::load(&path).expect("load");
        assert_eq!(loaded.origin(), KeyOrigin::Loaded);
        assert_eq!(loaded.key_id(), created.key_id());
        let again = SecretKey::load_or_create(&path).expect("load again");
        assert_eq!(again.key_id(), created.key_id());
        assert_eq!(again.origin(), KeyOrigin::Loaded);

        let sealed = created.encrypt("s", b"v");
        assert_eq!(
            loaded.decrypt("s", &sealed).expect("decrypt").as_slice(),
            b"v"
        );
        // No temporary files are left behind.
        let entries: Vec<_> = fs::read_dir(path.parent().expect("parent"))
            .expect("readdir")
            .collect();
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn write_new_never_overwrites() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ballast.key");
        let first = key();
        first.write_new(&path).expect("write");
        let before = fs::read(&path).expect("read");
        let err = key().write_new(&path).expect_err("must refuse");
        assert!(matches!(err, SecretError::KeyFileExists { .. }));
        assert_eq!(fs::read(&path).expect("read"), before);
        assert_eq!(
            SecretKey::load(&path).expect("load").key_id(),
            first.key_id()
        );
    }

    #[test]
    fn missing_key_file_never_suggests_making_a_new_key_with_secret_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nope.key");
        let err = SecretKey::load(&path).expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("--key-file / BALLAST_KEY_FILE"), "{msg}");
        // `secret set` would make a new key, orphaning every value sealed with the lost one.
        assert!(!msg.contains("ballast secret set"), "{msg}");
    }

    #[test]
    fn key_search_names_every_place_in_order() {
        let creds = tempfile::tempdir().expect("tempdir");
        let chosen = Path::new(".ballast/ballast.key");
        let text = describe_key_search_with(chosen, None, None);
        assert_eq!(
            text,
            "ballast looked for the key at .ballast/ballast.key, taken from the first of: \
             --key-file or BALLAST_KEY_FILE (BALLAST_KEY_FILE not set); \
             $CREDENTIALS_DIRECTORY/ballast.key under systemd (CREDENTIALS_DIRECTORY not set); \
             .ballast/ballast.key in the working directory"
        );
        let text = describe_key_search_with(
            Path::new("/etc/b.key"),
            Some(Path::new("/etc/b.key")),
            Some(creds.path()),
        );
        assert!(text.contains("(BALLAST_KEY_FILE=/etc/b.key)"), "{text}");
        assert!(
            text.contains(&format!(
                "({}/ballast.key does not exist)",
                creds.path().display()
            )),
            "{text}"
        );
    }

    #[test]
    fn malformed_key_files_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ballast.key");
        let cases: &[&[u8]] = &[
            b"",
            b"\n",
            b"abcd\n",
            &[b'z'; 64],
            &[0xff, 0xfe, 0x00],
            &[b'a'; 65],
        ];
        for contents in cases {
            fs::write(&path, contents).expect("write");
            let err = SecretKey::load(&path).expect_err("must fail");
            assert!(
                matches!(err, SecretError::KeyFileMalformed { .. }),
                "{contents:?}: {err:?}"
            );
            assert!(err.to_string().contains(&path.display().to_string()));
            // load_or_create must not "repair" a bad key file by replacing it.
            assert!(SecretKey::load_or_create(&path).is_err());
            assert_eq!(fs::read(&path).expect("read"), *contents);
        }
        // Surrounding whitespace is tolerated (an editor may add a newline).
        fs::write(&path, format!("  {}\n\n", "ab".repeat(32))).expect("write");
        assert!(SecretKey::load(&path).is_ok());
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let k = SecretKey::from_bytes([0xab; KEY_LEN]);
        let shown = format!("{k:?}");
        assert!(!shown.contains("abab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
        assert!(shown.contains(k.key_id()));

        let sealed = k.encrypt("s", b"plaintext-value");
        let shown = format!("{sealed:?}");
        assert!(!shown.contains("plaintext"), "{shown}");
    }

    #[test]
    fn key_path_resolution_order() {
        let creds = tempfile::tempdir().expect("tempdir");
        let state = Path::new("/var/lib/ballast");
        let explicit = Path::new("/etc/ballast/my.key");

        assert_eq!(
            resolve_key_path_with(Some(explicit), state, Some(creds.path())),
            explicit
        );
        // Credentials directory without the file: fall back to the state directory.
        assert_eq!(
            resolve_key_path_with(None, state, Some(creds.path())),
            state.join("ballast.key")
        );
        fs::write(creds.path().join("ballast.key"), "x").expect("write");
        assert_eq!(
            resolve_key_path_with(None, state, Some(creds.path())),
            creds.path().join("ballast.key")
        );
        assert_eq!(
            resolve_key_path_with(None, state, None),
            state.join("ballast.key")
        );
    }
}
