//! Size limits on manifests, so that a mistake (a pasted binary, a generated 50 MiB value) is a
//! clear error at its place instead of a huge diff, a container that cannot start and a database
//! grown by hundreds of megabytes. Each is far above what a real manifest needs.

/// One scalar (an env value, a label, a command argument): 64 KiB. Env values go into the
/// container's environment, where Linux allows 128 KiB per string and about 2 MiB in all
/// (`execve`'s `MAX_ARG_STRLEN`, `ARG_MAX`); a certificate or a small JSON config fits, larger
/// data belongs in a file mounted with `volumes`.
pub const MAX_SCALAR_BYTES: usize = 64 << 10;

/// One `---` document, as written and after aliases are expanded: 1 MiB. The spec is kept in a
/// container label and in every snapshot row; real specs are a few KiB.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// One manifest file: 4 MiB, checked before the file is read.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// Every manifest file together: 64 MiB, checked before any file is read. The whole set is read
/// and validated on every `diff`, `apply` and daemon reload.
pub const MAX_SET_BYTES: u64 = 64 << 20;

/// `n` bytes for people: `512 B`, `64 KiB`, `50.0 MiB`.
pub(crate) fn human(n: u64) -> String {
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    if n >= MIB {
        if n.is_multiple_of(MIB) {
            format!("{} MiB", n / MIB)
        } else {
            format!("{:.1} MiB", n as f64 / MIB as f64)
        }
    } else if n >= KIB {
        if n.is_multiple_of(KIB) {
            format!("{} KiB", n / KIB)
        } else {
            format!("{:.1} KiB", n as f64 / KIB as f64)
        }
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(64 << 10), "64 KiB");
        assert_eq!(human((64 << 10) + 1), "64.0 KiB");
        assert_eq!(human(50 << 20), "50 MiB");
        assert_eq!(human(3 << 19), "1.5 MiB");
    }
}
