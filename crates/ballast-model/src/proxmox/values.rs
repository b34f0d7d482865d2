//! The value syntax of the Proxmox kinds: sizes (`4GiB`), vmids, MAC addresses, bridges, disk
//! interfaces, node, storage and pool names, tags, addresses. Each check answers why a value is
//! wrong in words a user can act on; validation puts that at the value's file:line:column, and
//! the plan uses the parsers to normalise what it compares.

use std::net::IpAddr;

/// The smallest and largest vmid Proxmox accepts.
pub const VMID_MIN: i64 = 100;
pub const VMID_MAX: i64 = 999_999_999;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// Bytes in a size written with a binary unit: `4GiB`, `512MiB`, `1TiB`, or Proxmox's own
/// spelling `4G`, `512M` (also binary). Whole numbers only, so what is compared is exact.
pub fn parse_size(text: &str) -> Result<u64, String> {
    const FORM: &str = "expected a whole number with a binary unit, e.g. `4GiB`, `512MiB` or `1TiB` (`4G` is read as 4GiB, as Proxmox does)";
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    if number.is_empty() {
        return Err(format!("`{text}` is not a size; {FORM}"));
    }
    let factor = match unit {
        "KiB" | "Ki" | "K" | "k" => KIB,
        "MiB" | "Mi" | "M" | "m" => MIB,
        "GiB" | "Gi" | "G" | "g" => GIB,
        "TiB" | "Ti" | "T" | "t" => TIB,
        "" => return Err(format!("`{text}` has no unit; {FORM}")),
        "KB" | "kB" | "MB" | "GB" | "TB" => {
            return Err(format!(
                "`{text}` uses a decimal unit; sizes are binary here as in Proxmox: write `{number}{}iB`",
                &unit[..1].to_ascii_uppercase()
            ));
        }
        _ => return Err(format!("unknown unit `{unit}` in `{text}`; {FORM}")),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// A guest's memory in MiB (Proxmox's unit for `memory`, `balloon` and `swap`).
pub fn parse_mib(text: &str, minimum_mib: u64) -> Result<u64, String> {
    let bytes = parse_size(text)?;
    if !bytes.is_multiple_of(MIB) {
        return Err(format!(
            "`{text}` is not a whole number of MiB; Proxmox sets memory in MiB"
        ));
    }
    let mib = bytes / MIB;
    if mib < minimum_mib {
        return Err(format!("`{text}` is below the minimum of {minimum_mib}MiB"));
    }
    Ok(mib)
}

/// A disk size in bytes: a whole number of MiB. Proxmox allocates a new disk in GiB
/// (`local-lvm:32`, or `local-lvm:1.5` for 1536MiB) and grows one to any size.
pub fn parse_disk_size(text: &str) -> Result<u64, String> {
    let bytes = parse_size(text)?;
    if bytes == 0 || !bytes.is_multiple_of(MIB) {
        return Err(format!(
            "`{text}` is not a whole number of MiB (at least 1MiB); Proxmox sizes disks in MiB"
        ));
    }
    Ok(bytes)
}

/// A size as ballast writes it back (`4GiB`, `1536MiB`): the largest binary unit that divides
/// it, so a size read from Proxmox prints the way a user writes it.
pub fn format_size(bytes: u64) -> String {
    for (factor, unit) in [(TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
        if bytes != 0 && bytes.is_multiple_of(factor) {
            return format!("{}{unit}", bytes / factor);
        }
    }
    format!("{bytes}B")
}

pub fn vmid_problem(vmid: i64) -> Option<String> {
    (!(VMID_MIN..=VMID_MAX).contains(&vmid))
        .then(|| format!("vmid {vmid} is out of range; expected {VMID_MIN} to {VMID_MAX}"))
}

/// A QEMU disk bus and its slots: what `interface` may name.
pub const DISK_BUSES: [(&str, u32); 4] = [("scsi", 30), ("virtio", 15), ("sata", 5), ("ide", 3)];

/// The bus and slot of a disk interface (`scsi0`, `virtio1`, `sata2`, `ide3`).
pub fn parse_disk_interface(text: &str) -> Result<(&str, u32), String> {
    const FORM: &str = "expected scsi0–scsi30, virtio0–virtio15, sata0–sata5 or ide0–ide3";
    let bus = text.trim_end_matches(|c: char| c.is_ascii_digit());
    let slot = &text[bus.len()..];
    let Some((_, max)) = DISK_BUSES.iter().find(|(b, _)| *b == bus) else {
        return Err(format!("`{text}` is not a disk interface; {FORM}"));
    };
    match slot.parse::<u32>() {
        Ok(n) if n <= *max && (slot == "0" || !slot.starts_with('0')) => Ok((bus, n)),
        _ => Err(format!("`{text}`: {bus} has slots 0 to {max}; {FORM}")),
    }
}

/// QEMU NIC models Proxmox knows.
pub const NET_MODELS: [&str; 14] = [
    "e1000",
    "e1000-82540em",
    "e1000-82544gc",
    "e1000-82545em",
    "e1000e",
    "i82551",
    "i82557b",
    "i82559er",
    "ne2k_isa",
    "ne2k_pci",
    "pcnet",
    "rtl8139",
    "virtio",
    "vmxnet3",
];

pub fn net_model_problem(model: &str) -> Option<String> {
    (!NET_MODELS.contains(&model)).then(|| {
        format!(
            "unknown NIC model `{model}`; expected one of: {}",
            NET_MODELS.join(", ")
        )
    })
}

/// A unicast MAC address, `BC:24:11:00:00:01` (Proxmox refuses multicast ones).
pub fn mac_problem(mac: &str) -> Option<String> {
    let parts: Vec<&str> = mac.split(':').collect();
    let hex = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    if !hex {
        return Some(format!(
            "`{mac}` is not a MAC address; expected six hex pairs such as BC:24:11:00:00:01"
        ));
    }
    let first = u8::from_str_radix(parts[0], 16).unwrap_or(0);
    (first & 1 == 1).then(|| {
        format!(
            "`{mac}` is a multicast address (the first octet is odd); a NIC needs a unicast one"
        )
    })
}

/// A Linux bridge or SDN vnet: a network interface name (at most 15 characters).
pub fn bridge_problem(bridge: &str) -> Option<String> {
    let ok = !bridge.is_empty()
        && bridge.len() <= 15
        && bridge.starts_with(|c: char| c.is_ascii_alphabetic())
        && bridge
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    (!ok).then(|| {
        format!(
            "`{bridge}` is not a bridge name; expected an interface name such as vmbr0 (a letter, then letters, digits, `_`, `.` or `-`, at most 15 characters)"
        )
    })
}

pub fn vlan_problem(vlan: i64) -> Option<String> {
    (!(1..=4094).contains(&vlan))
        .then(|| format!("VLAN {vlan} is out of range; expected 1 to 4094"))
}

/// A node name: a host name label.
pub fn node_problem(node: &str) -> Option<String> {
    let ok = !node.is_empty()
        && node.len() <= 63
        && node.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !node.starts_with('-')
        && !node.ends_with('-');
    (!ok).then(|| {
        format!("`{node}` is not a node name; expected a host name such as pve1 (letters, digits and `-`)")
    })
}

/// A storage id as Proxmox defines one: `[a-z][a-z0-9._-]*[a-z0-9]`.
pub fn storage_problem(storage: &str) -> Option<String> {
    let ok = storage.len() >= 2
        && storage.starts_with(|c: char| c.is_ascii_lowercase())
        && storage.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && storage
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    (!ok).then(|| {
        format!("`{storage}` is not a storage id; expected a name such as local-lvm (lower-case letters, digits, `.`, `_` and `-`, starting with a letter)")
    })
}

/// A pool id (`homelab`, or nested `lab/web`).
pub fn pool_problem(pool: &str) -> Option<String> {
    let ok = !pool.is_empty()
        && pool.split('/').count() <= 3
        && pool.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    (!ok).then(|| {
        format!(
            "`{pool}` is not a pool id; expected letters, digits, `-` and `_` (nested pools as a/b)"
        )
    })
}

/// A tag as Proxmox accepts one; tags are compared without case.
pub fn tag_problem(tag: &str) -> Option<String> {
    let ok = tag
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-+.".contains(c));
    (!ok).then(|| {
        format!("`{tag}` is not a tag; expected letters, digits, `_`, `-`, `+` and `.` (not starting with `-`, `+` or `.`)")
    })
}

/// A guest name or container host name: a DNS name.
pub fn dns_name_problem(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    (!ok).then(|| {
        format!(
            "`{name}` is not a DNS name; Proxmox names guests with letters, digits, `-` and `.`"
        )
    })
}

/// An address with its prefix length (`10.0.0.5/24`, `fd00::5/64`).
pub fn cidr_problem(text: &str) -> Option<String> {
    let valid = text.split_once('/').is_some_and(|(ip, prefix)| {
        match (ip.parse::<IpAddr>(), prefix.parse::<u8>()) {
            (Ok(IpAddr::V4(_)), Ok(p)) => p <= 32,
            (Ok(IpAddr::V6(_)), Ok(p)) => p <= 128,
            _ => false,
        }
    });
    (!valid).then(|| {
        format!("`{text}` is not an address with a prefix length; expected e.g. 10.0.0.5/24")
    })
}

pub fn ip_problem(text: &str) -> Option<String> {
    text.parse::<IpAddr>()
        .is_err()
        .then(|| format!("`{text}` is not an IP address"))
}

/// `storage:vztmpl/name.tar.zst`: a container OS template volume.
pub fn ostemplate_problem(text: &str) -> Option<String> {
    let valid = text.split_once(':').is_some_and(|(storage, volume)| {
        storage_problem(storage).is_none()
            && volume.len() > "vztmpl/".len()
            && volume.starts_with("vztmpl/")
            && [".tar.gz", ".tar.xz", ".tar.zst", ".tgz", ".tar.bz2"]
                .iter()
                .any(|ext| volume.ends_with(ext))
    });
    (!valid).then(|| {
        format!("`{text}` is not an OS template volume; expected STORAGE:vztmpl/FILE.tar.zst, e.g. local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst")
    })
}

/// An SSH public key line (`ssh-ed25519 AAAA… comment`).
pub fn ssh_key_problem(key: &str) -> Option<String> {
    let mut words = key.split_whitespace();
    let kind = words.next().unwrap_or_default();
    let body = words.next().unwrap_or_default();
    let known = kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-");
    let ok = known && body.len() > 16 && !key.contains('\n');
    (!ok).then(|| {
        "not an SSH public key; expected one line such as `ssh-ed25519 AAAAC3… user@host`"
            .to_string()
    })
}

/// A CPU type (`host`, `x86-64-v2-AES`, `kvm64`).
pub fn cpu_type_problem(cpu: &str) -> Option<String> {
    let ok = !cpu.is_empty()
        && cpu
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c));
    (!ok).then(|| format!("`{cpu}` is not a CPU type; expected e.g. host or x86-64-v2-AES"))
}

/// `https://host[:port]`: Proxmox's API is spoken over TLS only.
pub fn endpoint_problem(endpoint: &str) -> Option<String> {
    let Some(rest) = endpoint.strip_prefix("https://") else {
        return Some(format!(
            "`{endpoint}` is not an https URL; expected https://HOST:8006 (the Proxmox API is served over TLS only)"
        ));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = if let Some(after) = rest.strip_prefix('[') {
        match after.split_once(']') {
            Some((host, port)) => (host, port.strip_prefix(':')),
            None => ("", None),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p != 0));
    (!(host_ok && port_ok)).then(|| {
        format!("`{endpoint}` is not an endpoint; expected https://HOST[:PORT] with no path, e.g. https://pve1.lab:8006")
    })
}

/// `USER@REALM`.
pub fn user_problem(user: &str) -> Option<String> {
    let ok = user
        .split_once('@')
        .is_some_and(|(name, realm)| !name.is_empty() && !realm.is_empty() && !realm.contains('!'))
        && !user.chars().any(char::is_whitespace);
    (!ok).then(|| format!("`{user}` is not a Proxmox user; expected USER@REALM, e.g. root@pam"))
}

/// `USER@REALM!TOKENNAME`.
pub fn token_id_problem(token: &str) -> Option<String> {
    let ok = token.split_once('!').is_some_and(|(user, name)| {
        user_problem(user).is_none()
            && !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    });
    (!ok).then(|| {
        format!("`{token}` is not an API token id; expected USER@REALM!NAME, e.g. root@pam!ballast")
    })
}

/// A SHA-256 certificate fingerprint: 32 hex pairs, with or without `:` between them.
pub fn fingerprint_problem(text: &str) -> Option<String> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    let ok = hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit());
    (!ok).then(|| {
        format!("`{text}` is not a SHA-256 fingerprint; expected 32 hex pairs such as AB:CD:… (as `openssl x509 -noout -fingerprint -sha256` prints)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let ok = [
            ("4GiB", 4 * GIB),
            ("4Gi", 4 * GIB),
            ("4G", 4 * GIB),
            ("512MiB", 512 * MIB),
            ("512m", 512 * MIB),
            ("1TiB", TIB),
            ("8KiB", 8 * KIB),
        ];
        for (text, bytes) in ok {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
        for (text, why) in [
            ("4", "no unit"),
            ("4GB", "decimal unit"),
            ("four", "not a size"),
            ("4XiB", "unknown unit"),
            ("1.5GiB", "unknown unit"),
            ("99999999999TiB", "too large"),
        ] {
            let err = parse_size(text).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
        }
        assert_eq!(parse_mib("2GiB", 16), Ok(2048));
        assert!(parse_mib("8MiB", 16).is_err());
        assert!(parse_mib("1536KiB", 1).is_err());
        assert_eq!(parse_disk_size("32G"), Ok(32 * GIB));
        assert_eq!(parse_disk_size("1536MiB"), Ok(1536 * MIB));
        assert!(parse_disk_size("1536KiB").is_err());
        assert_eq!(format_size(4 * GIB), "4GiB");
        assert_eq!(format_size(1536 * MIB), "1536MiB");
        assert_eq!(format_size(1000), "1000B");
    }

    #[test]
    fn interfaces_macs_and_names() {
        assert_eq!(parse_disk_interface("scsi0"), Ok(("scsi", 0)));
        assert_eq!(parse_disk_interface("virtio15"), Ok(("virtio", 15)));
        assert_eq!(parse_disk_interface("ide3"), Ok(("ide", 3)));
        for bad in [
            "scsi31", "virtio16", "sata6", "ide4", "nvme0", "scsi", "scsi01",
        ] {
            assert!(parse_disk_interface(bad).is_err(), "{bad}");
        }
        assert!(mac_problem("BC:24:11:00:00:01").is_none());
        assert!(mac_problem("01:00:5E:00:00:01").is_some_and(|p| p.contains("multicast")));
        assert!(mac_problem("BC-24-11-00-00-01").is_some());
        assert!(bridge_problem("vmbr0").is_none());
        assert!(bridge_problem("vmbr 0").is_some());
        assert!(bridge_problem("averyveryverylongbridge").is_some());
        assert!(vmid_problem(100).is_none() && vmid_problem(999_999_999).is_none());
        assert!(vmid_problem(99).is_some() && vmid_problem(1_000_000_000).is_some());
        assert!(storage_problem("local-lvm").is_none());
        assert!(storage_problem("Local").is_some());
        assert!(tag_problem("web").is_none() && tag_problem("-web").is_some());
        assert!(pool_problem("lab/web").is_none() && pool_problem("a b").is_some());
        assert!(cidr_problem("10.0.0.5/24").is_none() && cidr_problem("10.0.0.5").is_some());
        assert!(ostemplate_problem("local:vztmpl/debian-12.tar.zst").is_none());
        assert!(ostemplate_problem("local:iso/debian.iso").is_some());
        assert!(endpoint_problem("https://pve1.lab:8006").is_none());
        assert!(endpoint_problem("https://[fd00::1]:8006/").is_none());
        assert!(endpoint_problem("http://pve1:8006").is_some());
        assert!(endpoint_problem("https://pve1:8006/api2/json").is_some());
        assert!(token_id_problem("root@pam!ballast").is_none());
        assert!(token_id_problem("root!ballast").is_some());
        assert!(user_problem("root@pam").is_none() && user_problem("root").is_some());
        let fp = ["AB"; 32].join(":");
        assert!(fingerprint_problem(&fp).is_none());
        assert!(fingerprint_problem("AB:CD").is_some());
        assert!(ssh_key_problem("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMq user@host").is_none());
        assert!(ssh_key_problem("hunter2").is_some());
    }
}
