//! A throwaway Debian host with its own sshd, in a container, for preparation tests: a real
//! machine ballast may install packages on (and, with [`Options::docker_capable`], Docker)
//! without touching this one.
//!
//! The image `ballast-test/debian-sshd:1` is made once per engine, offline but for Debian's
//! package mirror: `debootstrap --variant=minbase --include=openssh-server,sudo,ca-certificates
//! bookworm` from the mirror this machine's apt uses (or `BALLAST_DEBIAN_MIRROR`), then
//! `docker import`. It has the users `deploy` (NOPASSWD sudo) and `nosudo` (no sudo), an sshd
//! that reads its host key and everyone's `authorized_keys` from `/ballast` (bind-mounted per
//! host, so each host has its own keys), and no baked-in host keys or apt lists. Concurrent test
//! processes are serialised on a file lock in the temp directory while it is built.
//!
//! Each [`ThrowawayHost`] is one container on the private bridge network
//! `ballast-test-throwaway`, reached at its container address on port 22; it can reach the
//! Debian mirror (apt works inside). It is removed on drop; containers left by killed test
//! processes are removed by the next start.

use std::fmt;
use std::fs::{self, File};
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::docker;

/// The image every throwaway host runs.
pub const IMAGE: &str = "ballast-test/debian-sshd:1";

/// The private bridge network throwaway hosts live on.
pub const NETWORK: &str = "ballast-test-throwaway";

/// The Debian release the image is made of.
const SUITE: &str = "bookworm";

const INSTALL_HINT: &str = "apt-get install -y debootstrap openssh-client docker.io";

/// What the image's sshd reads from `/ballast` (see [`SSHD_CONFIG`]).
const SSHD_CONFIG: &str = "\
# ballast test host: keys come from /ballast, bind-mounted per container.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
HostKey /ballast/ssh_host_ed25519_key
AuthorizedKeysFile /ballast/authorized_keys/%u
";

/// A running throwaway host. Private keys are OpenSSH-format text; `Debug` leaves them out.
pub struct ThrowawayHost {
    /// The container's name (for `docker exec` and logs).
    pub container: String,
    /// The container's address on the private network.
    pub address: String,
    pub port: u16,
    /// `SHA256:…`, as `ssh-keygen -lf` prints it.
    pub host_key_fingerprint: String,
    /// Logs in as root.
    pub root_key: String,
    /// Logs in as `deploy`, who may `sudo -n` anything.
    pub deploy_key: String,
    /// Logs in as `nosudo`, who may not sudo.
    pub nosudo_key: String,
    docker_host: String,
    _dir: tempfile::TempDir,
}

impl fmt::Debug for ThrowawayHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThrowawayHost")
            .field("container", &self.container)
            .field("address", &self.address)
            .field("port", &self.port)
            .field("host_key_fingerprint", &self.host_key_fingerprint)
            .field("keys", &"<redacted>")
            .finish()
    }
}

/// How to start a host.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Let a Docker engine run inside: every capability but `SYS_RESOURCE` (which this
    /// sandbox's engine cannot grant, so `--privileged` fails here), no seccomp/AppArmor
    /// confinement, writable `/sys` and cgroups, and its own `/var/lib/docker` volume (overlay2
    /// cannot stack on the container's root).
    pub docker_capable: bool,
}

/// Makes the cgroup hierarchies writable inside a `docker_capable` host (Docker mounts them
/// read-only unless `--privileged`): remounted fresh, v1 controller by controller or v2 whole.
const WRITABLE_CGROUPS: &str = r#"set -e
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
  umount /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup
else
  for d in /sys/fs/cgroup/*; do
    [ -d "$d" ] || continue
    n=$(basename "$d")
    opts=$(awk -v m="$d" '$2 == m { print $4 }' /proc/mounts | tr ',' '\n' | grep -vxE 'ro|rw|nosuid|nodev|noexec|relatime' | paste -sd, -)
    [ -n "$opts" ] || continue
    umount "$d" && mount -t cgroup -o "$opts" cgroup "$d"
  done
fi
"#;

impl ThrowawayHost {
    /// A fresh host (the image is made first when missing).
    pub fn start() -> Result<ThrowawayHost> {
        ThrowawayHost::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Result<ThrowawayHost> {
        let engine = docker::engine();
        let docker_host = engine.docker_host();
        require_program("ssh-keygen")?;
        remove_orphans(&docker_host);
        ensure_image(&docker_host)?;
        ensure_network(&docker_host)?;

        let dir = tempfile::Builder::new()
            .prefix("ballast-throwaway-")
            .tempdir()
            .context("creating a temp directory for the host's keys")?;
        let mount = dir.path().join("mount");
        let keys = dir.path().join("keys");
        fs::create_dir_all(mount.join("authorized_keys"))?;
        fs::create_dir_all(&keys)?;
        // sshd reads authorized_keys as the user logging in: they must reach the files.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
        fs::set_permissions(&mount, fs::Permissions::from_mode(0o755))?;
        fs::set_permissions(
            mount.join("authorized_keys"),
            fs::Permissions::from_mode(0o755),
        )?;
        fs::set_permissions(&keys, fs::Permissions::from_mode(0o700))?;

        let host_key = mount.join("ssh_host_ed25519_key");
        keygen(&host_key, "ballast-throwaway-host")?;
        let host_key_fingerprint = fingerprint(&host_key.with_extension("pub"))?;

        let mut private = Vec::new();
        for user in ["root", "deploy", "nosudo"] {
            let key = keys.join(user);
            keygen(&key, &format!("ballast-test-{user}"))?;
            let public = mount.join("authorized_keys").join(user);
            fs::copy(key.with_extension("pub"), &public)
                .with_context(|| format!("copying {user}'s public key"))?;
            fs::set_permissions(&public, fs::Permissions::from_mode(0o644))?;
            private.push(
                fs::read_to_string(&key).with_context(|| format!("reading {}", key.display()))?,
            );
        }
        let [root_key, deploy_key, nosudo_key] =
            <[String; 3]>::try_from(private).map_err(|_| anyhow!("expected three private keys"))?;

        let container = format!(
            "ballast-throwaway-{}",
            uuid::Uuid::new_v4()
                .simple()
                .to_string()
                .get(..12)
                .unwrap_or("x")
        );
        let mut run = docker_cmd(&docker_host);
        run.args(["run", "-d", "--name", &container, "--hostname", "throwaway"])
            .args(["--network", NETWORK])
            .args(["--label", "ballast-test=throwaway"])
            .args([
                "--label",
                &format!("ballast-test.pid={}", std::process::id()),
            ])
            .arg("-v")
            .arg(format!("{}:/ballast:ro", mount.display()));
        if options.docker_capable {
            run.args(["--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE"])
                .args(["--security-opt", "seccomp=unconfined"])
                .args(["--security-opt", "apparmor=unconfined"])
                .args(["--security-opt", "systempaths=unconfined"])
                .args(["--mount", "type=volume,dst=/var/lib/docker"]);
        }
        run.args([IMAGE, "/usr/sbin/sshd", "-D", "-e"]);
        checked(&mut run, "starting the throwaway container")?;

        let mut host = ThrowawayHost {
            address: String::new(),
            port: 22,
            host_key_fingerprint,
            root_key,
            deploy_key,
            nosudo_key,
            docker_host,
            _dir: dir,
            container,
        };
        host.address = host.container_address()?;
        if options.docker_capable {
            let out = host.docker_exec(WRITABLE_CGROUPS)?;
            if !out.status.success() {
                bail!(
                    "making cgroups writable in {}: {}",
                    host.container,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        host.wait_for_sshd(Duration::from_secs(20))?;
        Ok(host)
    }

    /// The private key text of `user` (`root`, `deploy` or `nosudo`).
    pub fn key_of(&self, user: &str) -> Option<&str> {
        match user {
            "root" => Some(&self.root_key),
            "deploy" => Some(&self.deploy_key),
            "nosudo" => Some(&self.nosudo_key),
            _ => None,
        }
    }

    /// Runs `sh -c script` in the container as root, from outside (not over SSH): for tests
    /// that check what a step did by other means than the code under test.
    pub fn docker_exec(&self, script: &str) -> Result<Output> {
        docker_cmd(&self.docker_host)
            .args(["exec", &self.container, "sh", "-c", script])
            .output()
            .with_context(|| format!("docker exec in {}", self.container))
    }

    /// The container's logs (sshd's, with `-e`).
    pub fn logs(&self) -> String {
        docker_cmd(&self.docker_host)
            .args(["logs", &self.container])
            .output()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_default()
    }

    fn container_address(&self) -> Result<String> {
        let format = format!("{{{{(index .NetworkSettings.Networks \"{NETWORK}\").IPAddress}}}}");
        let out = checked(
            docker_cmd(&self.docker_host).args(["inspect", "-f", &format, &self.container]),
            "inspecting the throwaway container",
        )?;
        let address = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if address.is_empty() {
            bail!("container {} has no address on {NETWORK}", self.container);
        }
        Ok(address)
    }

    /// Until sshd sends its banner.
    fn wait_for_sshd(&self, limit: Duration) -> Result<()> {
        let addr: SocketAddr = format!("{}:{}", self.address, self.port)
            .parse()
            .with_context(|| format!("container address {:?}", self.address))?;
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut banner = [0u8; 4];
                if stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-" {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "sshd in {} did not answer on {addr} within {limit:?}; its log:\n{}",
                    self.container,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for ThrowawayHost {
    fn drop(&mut self) {
        let _ = docker_cmd(&self.docker_host)
            .args(["rm", "-f", "-v", &self.container])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn docker_cmd(docker_host: &str) -> Command {
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_HOST", docker_host);
    cmd
}

/// Runs `cmd`, failing with its stderr when it fails.
fn checked(cmd: &mut Command, what: &str) -> Result<Output> {
    let out = cmd.output().with_context(|| {
        format!(
            "{what}: cannot run {:?} (`{INSTALL_HINT}`)",
            cmd.get_program()
        )
    })?;
    if !out.status.success() {
        bail!(
            "{what}: {:?} exited with {}: {}",
            cmd.get_args().collect::<Vec<_>>(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

fn require_program(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| anyhow!("`{name}` is not installed; run `{INSTALL_HINT}`"))
}

fn keygen(path: &Path, comment: &str) -> Result<()> {
    checked(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path),
        "generating an SSH key",
    )?;
    Ok(())
}

/// `SHA256:…` of a public key file.
fn fingerprint(public: &Path) -> Result<String> {
    let out = checked(
        Command::new("ssh-keygen").arg("-lf").arg(public),
        "fingerprinting the host key",
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(1)
        .filter(|f| f.starts_with("SHA256:"))
        .map(str::to_string)
        .ok_or_else(|| anyhow!("unexpected `ssh-keygen -lf` output: {text}"))
}

/// Removes throwaway containers whose test process is gone (killed before its drop ran).
fn remove_orphans(docker_host: &str) {
    let Ok(out) = docker_cmd(docker_host)
        .args([
            "ps",
            "-a",
            "--filter",
            "label=ballast-test=throwaway",
            "--format",
            "{{.ID}} {{.Label \"ballast-test.pid\"}}",
        ])
        .output()
    else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut words = line.split_whitespace();
        let (Some(id), pid) = (words.next(), words.next()) else {
            continue;
        };
        let alive = pid.is_some_and(|pid| Path::new("/proc").join(pid).exists());
        if !alive {
            let _ = docker_cmd(docker_host)
                .args(["rm", "-f", "-v", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The ids of the networks named [`NETWORK`], oldest first.
fn networks_named(docker_host: &str) -> Vec<String> {
    let Ok(out) = docker_cmd(docker_host)
        .args([
            "network",
            "ls",
            "--no-trunc",
            "--filter",
            &format!("name=^{NETWORK}$"),
            "--format",
            "{{.CreatedAt}}\t{{.ID}}",
        ])
        .output()
    else {
        return Vec::new();
    };
    let mut rows: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(at, id)| (at.to_string(), id.to_string()))
        .collect();
    rows.sort();
    rows.into_iter().map(|(_, id)| id).collect()
}

/// Makes [`NETWORK`] once per engine: checked and created under a lock shared by every test
/// process, since an engine of API 1.41 happily creates two networks of one name. Copies left by
/// an older, unlocked run are removed (the oldest is kept), so a name lookup is never ambiguous.
fn ensure_network(docker_host: &str) -> Result<()> {
    let _lock = crate::shared_lock("ballast-test-throwaway-network")?;
    let existing = networks_named(docker_host);
    if let Some((_, extra)) = existing.split_first() {
        for id in extra {
            let _ = docker_cmd(docker_host)
                .args(["network", "rm", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if networks_named(docker_host).len() > 1 {
            bail!(
                "several networks are named {NETWORK} and the extra ones are in use; remove them: docker network rm $(docker network ls -q --filter name=^{NETWORK}$)"
            );
        }
        return Ok(());
    }
    let mut create = docker_cmd(docker_host);
    create.args(["network", "create", "--label", "ballast-test=throwaway"]);
    // The default bridge's MTU may be lowered to fit the host's uplink; a new network would not
    // inherit it, and apt's downloads would stall on oversized packets.
    if let Some(mtu) = bridge_mtu(docker_host) {
        create.args(["-o", &format!("com.docker.network.driver.mtu={mtu}")]);
    }
    create.arg(NETWORK);
    let out = create.output().context("docker network create")?;
    if !out.status.success() {
        bail!(
            "creating network {NETWORK}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn bridge_mtu(docker_host: &str) -> Option<String> {
    let out = docker_cmd(docker_host)
        .args([
            "network",
            "inspect",
            "bridge",
            "--format",
            "{{index .Options \"com.docker.network.driver.mtu\"}}",
        ])
        .output()
        .ok()?;
    let mtu = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && mtu.parse::<u32>().is_ok()).then_some(mtu)
}

fn image_exists(docker_host: &str) -> bool {
    docker_cmd(docker_host)
        .args(["image", "inspect", IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes [`IMAGE`] unless the engine has it.
pub fn ensure_image(docker_host: &str) -> Result<()> {
    if image_exists(docker_host) {
        return Ok(());
    }
    let _lock = crate::shared_lock("ballast-test-throwaway-image")?;
    if image_exists(docker_host) {
        return Ok(());
    }
    let started = Instant::now();
    let debootstrap = require_program("debootstrap")?;
    let mirror = debian_mirror();
    let work = tempfile::Builder::new()
        .prefix("ballast-debootstrap-")
        .tempdir()
        .context("creating a temp directory for debootstrap")?;
    let root = work.path().join("root");
    let log_path = work.path().join("debootstrap.log");
    let result = build_rootfs(&debootstrap, &mirror, &root, &log_path)
        .and_then(|()| import(docker_host, &root));
    // debootstrap mounts /proc and /sys in the target; a failed run may leave them mounted,
    // and removing the directory must not reach into them.
    unmount_below(&root);
    result?;
    eprintln!(
        "made {IMAGE} with debootstrap from {mirror} in {:.0?}",
        started.elapsed()
    );
    Ok(())
}

fn build_rootfs(debootstrap: &Path, mirror: &str, root: &Path, log_path: &Path) -> Result<()> {
    let log = File::create(log_path)?;
    let status = Command::new(debootstrap)
        .args([
            "--variant=minbase",
            "--include=openssh-server,sudo,ca-certificates",
            SUITE,
        ])
        .arg(root)
        .arg(mirror)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .with_context(|| format!("running {} (it needs root)", debootstrap.display()))?;
    if !status.success() {
        let text = fs::read_to_string(log_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        bail!(
            "debootstrap {SUITE} from {mirror} failed ({status}); last lines:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }

    for (user, uid) in [("deploy", "1000"), ("nosudo", "1001")] {
        checked(
            Command::new("chroot").arg(root).args([
                "useradd",
                "-m",
                "-u",
                uid,
                "-s",
                "/bin/bash",
                user,
            ]),
            &format!("adding user {user}"),
        )?;
    }
    // Without PAM, sshd refuses accounts whose password is locked (`!`); `*` only means "no
    // password", which key logins do not need.
    for user in ["root", "deploy", "nosudo"] {
        checked(
            Command::new("chroot")
                .arg(root)
                .args(["usermod", "-p", "*", user]),
            &format!("unlocking {user}"),
        )?;
    }
    let sudoers = root.join("etc/sudoers.d/deploy");
    fs::write(&sudoers, "deploy ALL=(ALL) NOPASSWD:ALL\n")?;
    fs::set_permissions(&sudoers, fs::Permissions::from_mode(0o440))?;
    fs::write(root.join("etc/ssh/sshd_config.d/ballast.conf"), SSHD_CONFIG)?;
    // Each host gets its own host key through /ballast; none is baked into the image.
    for entry in fs::read_dir(root.join("etc/ssh"))? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with("ssh_host_") {
            fs::remove_file(entry.path())?;
        }
    }
    fs::create_dir_all(root.join("run/sshd"))?;
    fs::create_dir_all(root.join("ballast"))?;
    // A fresh server's package index is whatever it is; here it is empty, so a preparation must
    // refresh it (and the image is smaller).
    for dir in ["var/lib/apt/lists", "var/cache/apt/archives"] {
        let dir = root.join(dir);
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_file()) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }
    for cache in ["pkgcache.bin", "srcpkgcache.bin"] {
        let _ = fs::remove_file(root.join("var/cache/apt").join(cache));
    }
    Ok(())
}

fn import(docker_host: &str, root: &Path) -> Result<()> {
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(root)
        .args(["--numeric-owner", "-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("running tar")?;
    let tar_out = tar
        .stdout
        .take()
        .ok_or_else(|| anyhow!("tar has no stdout"))?;
    let out = docker_cmd(docker_host)
        .args([
            "import",
            "--change",
            r#"CMD ["/usr/sbin/sshd", "-D", "-e"]"#,
            "-",
            IMAGE,
        ])
        .stdin(tar_out)
        .output()
        .context("running docker import")?;
    let tar_status = tar.wait()?;
    if !tar_status.success() || !out.status.success() {
        bail!(
            "importing {IMAGE} failed (tar {tar_status}, docker {}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The Debian mirror: `BALLAST_DEBIAN_MIRROR`, else the first Debian `URIs:`/`deb` line of this
/// machine's apt sources, else deb.debian.org.
fn debian_mirror() -> String {
    if let Ok(mirror) = std::env::var("BALLAST_DEBIAN_MIRROR")
        && !mirror.trim().is_empty()
    {
        return mirror.trim().to_string();
    }
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for file in files {
        let name = file.to_string_lossy();
        if !(name.ends_with(".list") || name.ends_with(".sources")) {
            continue;
        }
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        if let Some(uri) = mirror_in(&text) {
            return uri;
        }
    }
    "http://deb.debian.org/debian".to_string()
}

/// The first URI in apt sources text (one-line or deb822 format) that serves Debian's main
/// archive (not the security archive, which has no full suite).
fn mirror_in(text: &str) -> Option<String> {
    let usable =
        |uri: &str| uri.starts_with("http") && uri.contains("debian") && !uri.contains("security");
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        let uris: Vec<&str> = if let Some(rest) = line.strip_prefix("URIs:") {
            rest.split_whitespace().collect()
        } else if line.starts_with("deb ") {
            line.split_whitespace()
                .skip(1)
                .filter(|w| !w.starts_with('['))
                .take(1)
                .collect()
        } else {
            continue;
        };
        if let Some(uri) = uris.into_iter().find(|u| usable(u)) {
            return Some(uri.trim_end_matches('/').to_string());
        }
    }
    None
}

fn unmount_below(root: &Path) {
    let Ok(mounts) = fs::read_to_string("/proc/mounts") else {
        return;
    };
    let prefix = root.to_string_lossy().to_string();
    let mut targets: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    // Deepest first.
    targets.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for target in targets {
        let _ = Command::new("umount").args(["-l", target]).status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_from_sources() {
        let deb822 = "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\n";
        assert_eq!(
            mirror_in(deb822).as_deref(),
            Some("http://deb.debian.org/debian")
        );
        let one_line = "deb http://security.debian.org/debian-security bookworm-security main\ndeb [arch=amd64] http://ftp.de.debian.org/debian/ bookworm main\n";
        assert_eq!(
            mirror_in(one_line).as_deref(),
            Some("http://ftp.de.debian.org/debian")
        );
        assert_eq!(
            mirror_in("deb https://deb.nodesource.com/node_20.x nodistro main"),
            None
        );
    }

    /// The host answers SSH with its own host key, and its users are what the tests expect;
    /// checked with OpenSSH's own client, independent of ballast's.
    #[test]
    fn users_log_in_with_their_keys() {
        let host = ThrowawayHost::start().unwrap_or_else(|e| panic!("{e:#}"));
        let dir = tempfile::tempdir().unwrap();
        let known = dir.path().join("known_hosts");
        let pubkey = host
            .docker_exec("cat /ballast/ssh_host_ed25519_key.pub")
            .unwrap();
        fs::write(
            &known,
            format!(
                "{} {}",
                host.address,
                String::from_utf8_lossy(&pubkey.stdout)
            ),
        )
        .unwrap();
        let ssh = |user: &str, command: &str| {
            let key = dir.path().join(user);
            fs::write(&key, host.key_of(user).unwrap()).unwrap();
            fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
            Command::new("ssh")
                .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
                .arg("-o")
                .arg(format!("UserKnownHostsFile={}", known.display()))
                .arg("-i")
                .arg(&key)
                .arg(format!("{user}@{}", host.address))
                .arg(command)
                .output()
                .unwrap()
        };
        let root = ssh("root", "id -u");
        assert_eq!(
            String::from_utf8_lossy(&root.stdout).trim(),
            "0",
            "{}\n{}",
            String::from_utf8_lossy(&root.stderr),
            host.logs()
        );
        let deploy = ssh("deploy", "sudo -n id -u");
        assert_eq!(String::from_utf8_lossy(&deploy.stdout).trim(), "0");
        let nosudo = ssh("nosudo", "id -un; sudo -n true");
        assert_eq!(String::from_utf8_lossy(&nosudo.stdout).trim(), "nosudo");
        assert!(!nosudo.status.success(), "nosudo must not sudo");
        assert!(host.host_key_fingerprint.starts_with("SHA256:"));
        assert!(!format!("{host:?}").contains("PRIVATE KEY"));
    }
}
