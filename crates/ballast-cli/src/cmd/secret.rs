//! `ballast secret`: values go in encrypted and never come back out on the command line. Each
//! change (set, rm, rotate-key) is one audit row with the secret's name, version and key id.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use ballast_engine::{KeyUse, actor, open_key};
use ballast_secrets::SecretKey;

use crate::SecretCommand;
use crate::context::Context;

pub async fn run(ctx: &Context, command: SecretCommand) -> anyhow::Result<ExitCode> {
    let key_file = ctx.key_file();
    let actor = actor();
    match command {
        SecretCommand::Set {
            name,
            from_file,
            new_key,
        } => {
            if ballast_model::validate::dns1123_problem(&name).is_some() {
                bail!(
                    "invalid secret name `{name}`: use lower-case letters, digits and `-` (a DNS-1123 label)"
                );
            }
            let value = match from_file {
                Some(path) => std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
                None => {
                    let mut buf = Vec::new();
                    std::io::stdin()
                        .read_to_end(&mut buf)
                        .context("cannot read the secret from standard input")?;
                    // `echo value | ballast secret set x` should store "value", not "value\n".
                    if buf.ends_with(b"\n") {
                        buf.pop();
                        if buf.ends_with(b"\r") {
                            buf.pop();
                        }
                    }
                    buf
                }
            };
            if value.is_empty() {
                bail!("the secret value is empty; pipe it on standard input or pass --from-file");
            }
            // Only `secret set` (and init, apply, the daemon) may create the store.
            let store = ctx.create_store().await?;
            let usage = if new_key {
                KeyUse::SealWithNewKey
            } else {
                KeyUse::Seal
            };
            let key = open_key(&store, &key_file, usage, &actor).await?;
            let sealed = key.try_encrypt(&name, &value)?;
            store.put_secret(&name, &sealed, &actor).await?;
            println!("secret/{name} stored (encrypted with key {})", key.key_id());
            let unreadable: Vec<String> = store
                .sealed_refs()
                .await?
                .into_iter()
                .filter(|r| r.key_id != key.key_id())
                .map(|r| r.name)
                .collect();
            if !unreadable.is_empty() {
                eprintln!(
                    "warning: {} value(s) are sealed with another key and can no longer be read until set again: {}",
                    unreadable.len(),
                    unreadable.join(", ")
                );
            }
        }
        SecretCommand::List => {
            let store = ctx.store().await?;
            let secrets = store.list_secrets().await?;
            if secrets.is_empty() {
                println!("no secrets");
            }
            for s in secrets {
                println!(
                    "{}\tupdated {}",
                    s.name,
                    s.updated_at.format("%Y-%m-%d %H:%M:%SZ")
                );
            }
        }
        SecretCommand::Rm { name } => {
            let store = ctx.store().await?;
            if !store.delete_secret(&name, &actor).await? {
                bail!("secret `{name}` does not exist");
            }
            println!("secret/{name} deleted");
        }
        SecretCommand::RotateKey => {
            let store = ctx.store().await?;
            let old = open_key(&store, &key_file, KeyUse::Read, &actor).await?;
            let new = SecretKey::generate();
            // The new key is on disk before the database switches to it, so a crash in between
            // leaves both keys available (ballast.key and ballast.key.new).
            let pending = key_file.with_extension("key.new");
            new.write_new(&pending)?;
            let count = store
                .rewrap_secrets(new.key_id(), &actor, |s| {
                    old.decrypt(&s.name, &s.sealed)
                        .map(|plain| new.encrypt(&s.name, &plain))
                })
                .await?;
            let retired = key_file.with_extension("key.old");
            std::fs::rename(&key_file, &retired)
                .with_context(|| format!("cannot move {} aside", key_file.display()))?;
            std::fs::rename(&pending, &key_file)
                .with_context(|| format!("cannot install {}", key_file.display()))?;
            println!(
                "re-encrypted {count} value(s) (secrets and server credentials) with key {}; the old key is in {} (delete it when backups no longer need it)",
                new.key_id(),
                retired.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
