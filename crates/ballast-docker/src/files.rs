//! The App's `files` as the tar archive the engine's `PUT /containers/{id}/archive` takes,
//! built in memory. The archive API works the same over the SSH tunnel to a remote engine, and
//! needs no path on the engine's machine (a bind mount of a file next to the manifests would
//! name a path that exists only where ballast runs).

use ballast_model::AppSpec;
use ballast_model::app::fields::parse_file_mode;
use ballast_model::app::sources::DEFAULT_FILE_MODE;

/// The archive of `spec.files`, to extract at `/`: one regular file per entry at its target
/// path (the engine creates missing parent directories), with its mode and owner. `None` when
/// the app has no files. The content must have been read with the manifests.
pub fn files_archive(spec: &AppSpec) -> Result<Option<Vec<u8>>, String> {
    if spec.files.is_empty() {
        return Ok(None);
    }
    // The time the files are written; the content, not the time, is what the spec hash covers.
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut builder = tar::Builder::new(Vec::new());
    for file in &spec.files {
        let content = file.content.as_ref().ok_or_else(|| {
            format!(
                "the content of {} was not read with the manifests; load them from their directory",
                file.source.value
            )
        })?;
        let mode = match &file.mode {
            Some(mode) => parse_file_mode(&mode.value)?,
            None => DEFAULT_FILE_MODE,
        };
        let path = file.target.value.trim_start_matches('/');
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(content.0.len() as u64);
        header.set_mode(mode);
        header.set_uid(u64::from(file.uid.unwrap_or(0)));
        header.set_gid(u64::from(file.gid.unwrap_or(0)));
        header.set_mtime(mtime);
        builder
            .append_data(&mut header, path, content.0.as_slice())
            .map_err(|e| format!("cannot put {} into the archive: {e}", file.target.value))?;
    }
    builder
        .into_inner()
        .map(Some)
        .map_err(|e| format!("cannot finish the archive of files: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::Arc;

    use ballast_model::app::sources::FileContent;

    #[test]
    fn files_become_one_archive_with_modes_and_owners() {
        let mut spec: AppSpec = serde_saphyr::from_str(
            "image: busybox:1\nfiles:\n  - {source: a.ini, target: /etc/app/a.ini, mode: \"0640\", uid: 1000, gid: 100}\n  - {source: b, target: /b}\n",
        )
        .unwrap();
        assert!(
            files_archive(&spec)
                .unwrap_err()
                .contains("was not read with the manifests")
        );
        spec.files[0].content = Some(FileContent(Arc::new(b"port = 80\n".to_vec())));
        spec.files[1].content = Some(FileContent(Arc::new(Vec::new())));
        let bytes = files_archive(&spec).unwrap().unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            seen.push((
                entry.path().unwrap().display().to_string(),
                header.mode().unwrap(),
                header.uid().unwrap(),
                header.gid().unwrap(),
                text,
            ));
        }
        assert_eq!(
            seen,
            vec![
                (
                    "etc/app/a.ini".into(),
                    0o640,
                    1000,
                    100,
                    "port = 80\n".into()
                ),
                ("b".into(), 0o444, 0, 0, String::new()),
            ]
        );
        let none: AppSpec = serde_saphyr::from_str("image: busybox:1").unwrap();
        assert_eq!(files_archive(&none).unwrap(), None);
    }
}
