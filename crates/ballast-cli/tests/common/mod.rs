//! A throwaway ballast installation for one test: its own manifest directory, SQLite database
//! and key file, talking to the real Docker engine (optionally through a call-counting proxy),
//! with app names unique to the test so tests run in parallel on one engine.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ballast_test_support::docker::{engine, unique_name};

pub struct Env {
    pub dir: tempfile::TempDir,
    pub manifests: PathBuf,
    pub database_url: String,
    pub key_file: PathBuf,
    pub docker_host: String,
    /// Prefix of every app name in this test, so cleanup finds exactly this test's containers.
    pub prefix: String,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Env {
    pub fn new(test: &str) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifests = dir.path().join("manifests");
        std::fs::create_dir_all(&manifests).expect("manifest dir");
        let database_url = format!("sqlite://{}", dir.path().join("state/ballast.db").display());
        let key_file = dir.path().join("state/ballast.key");
        Env {
            manifests,
            database_url,
            key_file,
            docker_host: engine().docker_host(),
            prefix: unique_name(test),
            dir,
        }
    }

    /// The same installation on another database (PostgreSQL).
    pub fn with_database(mut self, url: String) -> Env {
        self.database_url = url;
        self
    }

    pub fn image(&self) -> String {
        engine().image().to_string()
    }

    /// An app name unique to this test.
    pub fn name(&self, short: &str) -> String {
        format!("{}-{short}", self.prefix)
    }

    pub fn write(&self, file: &str, text: &str) {
        let path = self.manifests.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write manifest");
    }

    pub fn remove(&self, file: &str) {
        std::fs::remove_file(self.manifests.join(file)).expect("remove manifest");
    }

    /// A minimal App document; `extra` is more `spec` lines, indented two spaces.
    pub fn app(&self, short: &str, extra: &str) -> String {
        format!(
            "apiVersion: ballast/v1\nkind: App\nmetadata:\n  name: {}\nspec:\n  image: {}\n  pullPolicy: Never\n  command: [sh, -c, \"trap 'exit 0' TERM; sleep 3600 & wait\"]\n{extra}",
            self.name(short),
            self.image()
        )
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ballast"));
        cmd.env("BALLAST_DATABASE_URL", &self.database_url)
            .env("BALLAST_KEY_FILE", &self.key_file)
            .env("BALLAST_MANIFESTS", &self.manifests)
            .env("DOCKER_HOST", &self.docker_host)
            .env("NO_COLOR", "1")
            .env_remove("CREDENTIALS_DIRECTORY")
            .current_dir(self.dir.path());
        cmd
    }

    pub fn ballast(&self, args: &[&str]) -> Run {
        self.command()
            .args(args)
            .output()
            .expect("run ballast")
            .into()
    }

    /// `ballast` through another Docker host (the counting proxy).
    pub fn ballast_via(&self, docker_host: &str, args: &[&str]) -> Run {
        self.command()
            .env("DOCKER_HOST", docker_host)
            .args(args)
            .output()
            .expect("run ballast")
            .into()
    }

    pub fn apply(&self) -> Run {
        let run = self.ballast(&["apply", "--yes"]);
        assert_eq!(run.code, 0, "apply failed:\n{run}");
        run
    }

    pub fn docker(&self, args: &[&str]) -> Run {
        Command::new("docker")
            .env("DOCKER_HOST", &self.docker_host)
            .args(args)
            .output()
            .expect("run docker")
            .into()
    }

    /// `docker inspect` of a container by app short name, or None when there is none.
    pub fn inspect(&self, short: &str) -> Option<serde_json::Value> {
        let run = self.docker(&["inspect", &self.name(short)]);
        if run.code != 0 {
            return None;
        }
        let parsed: serde_json::Value = serde_json::from_str(&run.stdout).expect("inspect json");
        parsed.as_array().and_then(|a| a.first().cloned())
    }

    /// Names of this test's containers (all states).
    pub fn containers(&self) -> Vec<String> {
        let run = self.docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("name=^{}", self.prefix),
            "--format",
            "{{.Names}}",
        ]);
        let mut names: Vec<String> = run.stdout.lines().map(str::to_string).collect();
        names.sort();
        names
    }

    pub fn state_of(&self, short: &str) -> Option<String> {
        self.inspect(short)
            .and_then(|c| c["State"]["Status"].as_str().map(str::to_string))
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let run = self.ballast(&all);
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{run}"))
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn db_file(&self) -> Option<&Path> {
        self.database_url.strip_prefix("sqlite://").map(Path::new)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for name in self.containers() {
            let _ = self.docker(&["rm", "-f", &name]);
        }
    }
}
