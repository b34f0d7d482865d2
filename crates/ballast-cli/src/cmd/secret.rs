//! `ballast secret`: values go in encrypted and never come back out on the command line.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use ballast_secrets::SecretKey;

use crate::SecretCommand;
use crate::context::Context;

pub async fn run(ctx: &Context, command: SecretCommand) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let key_file = ctx.key_file();
    match command {
        SecretCommand::Set { name, from_file } => {
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
            let key = SecretKey::load_or_create(&key_file)?;
            store.put_secret(&name, &key.encrypt(&name, &value)).await?;
            println!("secret/{name} stored (encrypted with key {})", key.key_id());
        }
        SecretCommand::List => {
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
            if !store.delete_secret(&name).await? {
                bail!("secret `{name}` does not exist");
            }
            println!("secret/{name} deleted");
        }
        SecretCommand::RotateKey => {
            let old = SecretKey::load(&key_file)?;
            let new = SecretKey::generate();
            // The new key is on disk before the database switches to it, so a crash in between
            // leaves both keys available (ballast.key and ballast.key.new).
            let pending = key_file.with_extension("key.new");
            new.write_new(&pending)?;
            let count = store
                .rewrap_secrets(|s| {
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
