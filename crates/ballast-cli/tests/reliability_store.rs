//! Reliability of what the store keeps, end to end through the real binary: concurrent
//! applies never corrupt each other's records, a lost key is never silently replaced, the
//! database files are private, secret commands are audited without their values, and read
//! commands never create a database.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use common::{Env, Run};

fn set_secret(env: &Env, args: &[&str], value: &str) -> Run {
    let mut child = env
        .command()
        .args(["secret", "set"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ballast");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{value}\n").as_bytes())
        .expect("write value");
    child.wait_with_output().expect("wait").into()
}

/// The counts of an apply summary: `N created, N updated, N replaced, N deleted, N failed`
/// and, when some were left to another process, `, N not touched (…)`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Summary {
    created: usize,
    changed: usize,
    failed: usize,
    not_touched: usize,
}

fn parse_summary(text: &str) -> Summary {
    let number_before = |word: &str| -> usize {
        text.find(word)
            .and_then(|at| text[..at].trim_end().rsplit([' ', ',', ':']).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Summary {
        created: number_before(" created"),
        changed: number_before(" updated") + number_before(" replaced") + number_before(" deleted"),
        failed: number_before(" failed"),
        not_touched: number_before(" not touched"),
    }
}

/// How many changes `Plan: N to add, N to change, N to replace, N to delete.` announces.
fn planned_changes(stdout: &str) -> usize {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Plan: "))
        .unwrap_or_else(|| panic!("no plan line in:\n{stdout}"));
    line.split(", ")
        .filter_map(|part| part.split(' ').next()?.parse::<usize>().ok())
        .sum()
}

/// Defect 2: two applies at once on 15 apps. Each creates what it acts on, leaves to the other
/// what the other holds (or already did), and neither marks the other's running tasks
/// interrupted.
#[test]
fn two_applies_at_once_create_each_container_once_and_both_audit_rows_tell_the_truth() {
    let env = Env::new("twoapply");
    let count = 15;
    let docs: Vec<String> = (0..count)
        .map(|i| env.app(&format!("app{i:02}"), ""))
        .collect();
    env.write("apps.yaml", &docs.join("---\n"));

    let spawn = || {
        env.command()
            .args(["apply", "--yes"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start apply")
    };
    let first = spawn();
    // The second starts while the first is acting, so its start-up recovery certainly sees the
    // first's running tasks (started at the same instant, it only sometimes does).
    std::thread::sleep(Duration::from_millis(200));
    let second = spawn();
    let runs: Vec<Run> = [first, second]
        .into_iter()
        .map(|child| child.wait_with_output().expect("wait apply").into())
        .collect();
    for run in &runs {
        assert_eq!(run.code, 0, "neither apply fails:\n{run}");
        assert!(
            !run.stdout.contains("is interrupted") && !run.stderr.contains("is interrupted"),
            "no task of a live apply is marked interrupted:\n{run}"
        );
    }

    let names = env.containers();
    assert_eq!(names.len(), count, "one container per app: {names:?}");
    for i in 0..count {
        assert_eq!(
            env.state_of(&format!("app{i:02}")).as_deref(),
            Some("running")
        );
    }

    // Each audit row says what its apply did: together they created every app exactly once,
    // and each accounts for every app it planned, as created or not touched.
    let audit = env.ballast(&["audit", "-o", "json"]);
    assert_eq!(audit.code, 0, "{audit}");
    let parsed: serde_json::Value = serde_json::from_str(&audit.stdout)
        .unwrap_or_else(|e| panic!("audit is not JSON ({e}):\n{audit}"));
    assert_eq!(parsed["chainIntact"], true, "{audit}");
    let rows = parsed["entries"].as_array().expect("entries").clone();
    let applies: Vec<&str> = rows
        .iter()
        .filter(|r| r["action"] == "apply")
        .map(|r| r["summary"].as_str().expect("summary"))
        .collect();
    assert_eq!(applies.len(), 2, "{rows:?}");
    let summaries: Vec<Summary> = applies.iter().map(|s| parse_summary(s)).collect();
    assert_eq!(
        summaries.iter().map(|s| s.created).sum::<usize>(),
        count,
        "every app created once, by one apply or the other: {applies:?}"
    );
    assert!(
        summaries.iter().all(|s| s.failed == 0),
        "nothing failed: {applies:?}"
    );
    assert!(
        summaries.iter().any(|s| s.not_touched > 0),
        "what the other apply held is reported as not touched: {applies:?}"
    );
    for run in &runs {
        let planned = planned_changes(&run.stdout);
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with("Apply complete: "))
            .unwrap_or_else(|| panic!("no summary:\n{run}"));
        let summary = parse_summary(line);
        assert_eq!(
            summary.created + summary.changed + summary.failed + summary.not_touched,
            planned,
            "every planned change is accounted for, done or not touched:\n{run}"
        );
        assert!(
            applies.contains(
                &line
                    .trim_start_matches("Apply complete: ")
                    .trim_end_matches('.')
            ),
            "the audit row is the summary printed: {line} vs {applies:?}"
        );
        for held in run.stdout.lines().filter(|l| l.starts_with("NOT TOUCHED ")) {
            assert!(
                held.contains("held by apply ") || held.contains("already done by apply "),
                "names the other apply: {held}"
            );
        }
    }

    let tasks = env.json(&["tasks", "--limit", "1000"]);
    let tasks = tasks.as_array().expect("task list");
    assert!(
        tasks.iter().all(|t| t["status"] == "succeeded"),
        "every task succeeded, none interrupted or left running: {tasks:?}"
    );
    assert_eq!(
        tasks.iter().filter(|t| t["action"] == "create").count(),
        count,
        "one create task per app: {tasks:?}"
    );
    assert_eq!(env.ballast(&["diff", "--refresh"]).code, 0, "in sync");
}

/// Defect 5: `secret set` without the key file must not make a new key while the store holds
/// secrets sealed with the lost one; the errors name the key needed and where ballast looked.
#[test]
fn a_lost_key_is_never_replaced_silently() {
    let env = Env::new("lostkey");
    let set = set_secret(&env, &["db-password"], "first-value");
    assert_eq!(set.code, 0, "{set}");
    let key_id = set
        .stdout
        .rsplit("key ")
        .next()
        .map(|s| s.trim().trim_end_matches(')').to_string())
        .expect("key id");
    assert_eq!(key_id.len(), 16, "{set}");
    let aside = env.path("ballast.key.saved");
    std::fs::rename(&env.key_file, &aside).expect("lose the key file");

    let refused = set_secret(&env, &["api-token"], "second-value");
    assert_ne!(refused.code, 0, "refused:\n{refused}");
    for expected in [
        "refusing to create a new key",
        "`db-password`",
        key_id.as_str(),
        "--new-key",
    ] {
        let shown = expected.trim_matches('`');
        assert!(refused.stderr.contains(shown), "names {shown}:\n{refused}");
    }
    assert!(!env.key_file.exists(), "no key file was created");
    let list = env.ballast(&["secret", "list"]);
    assert_eq!(list.code, 0, "{list}");
    assert!(
        !list.stdout.contains("api-token"),
        "nothing stored:\n{list}"
    );

    // Reading needs the key: the error names the key the store needs and every place looked.
    let rotate = env.ballast(&["secret", "rotate-key"]);
    assert_ne!(rotate.code, 0, "{rotate}");
    for expected in [
        env.key_file.display().to_string(),
        format!("sealed with key {key_id}"),
        "--key-file".to_string(),
        "BALLAST_KEY_FILE".to_string(),
        "$CREDENTIALS_DIRECTORY/ballast.key".to_string(),
        ".ballast/ballast.key".to_string(),
    ] {
        assert!(
            rotate.stderr.contains(&expected),
            "names {expected}:\n{rotate}"
        );
    }
    assert!(
        !rotate.stderr.contains("ballast secret set"),
        "never recommends the command that would make a new key:\n{rotate}"
    );

    // Asked for explicitly, a new key is made, and what became unreadable is named.
    let forced = set_secret(&env, &["api-token", "--new-key"], "second-value");
    assert_eq!(forced.code, 0, "{forced}");
    assert!(
        forced.stderr.contains("db-password"),
        "warns what can no longer be read:\n{forced}"
    );
    let audit = env.ballast(&["audit"]);
    assert!(
        audit.stdout.contains("secret new-key") && audit.stdout.contains("db-password"),
        "{audit}"
    );

    // The old key file brought back is now the wrong one for the store: refused, naming both.
    std::fs::rename(&env.key_file, env.path("ballast.key.new-one")).expect("move");
    std::fs::rename(&aside, &env.key_file).expect("restore");
    let mismatch = set_secret(&env, &["third"], "third-value");
    assert_ne!(mismatch.code, 0, "{mismatch}");
    assert!(
        mismatch.stderr.contains(&format!("holds key {key_id}"))
            && mismatch.stderr.contains("api-token"),
        "{mismatch}"
    );
}

/// Weak spot: the SQLite file, like the key next to it, is readable by its owner only.
#[test]
fn the_database_file_is_created_private() {
    let env = Env::new("dbmode");
    let set = set_secret(&env, &["token"], "value");
    assert_eq!(set.code, 0, "{set}");
    let db = env.db_file().expect("sqlite");
    let mode = std::fs::metadata(db).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} is mode {mode:o}", db.display());
    for suffix in ["-wal", "-shm"] {
        let side = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if let Ok(meta) = std::fs::metadata(&side) {
            assert_eq!(
                meta.permissions().mode() & 0o777,
                0o600,
                "{}",
                side.display()
            );
        }
    }
}

/// Weak spot: `secret set`, `rm` and `rotate-key` are in the audit log (name and version,
/// never the value), and the value is nowhere in the database files.
#[test]
fn secret_commands_are_audited_without_their_values() {
    let env = Env::new("secaudit");
    let value = "Sup3r-s3cret-0b8f4e1a";
    assert_eq!(set_secret(&env, &["db-password"], value).code, 0);
    assert_eq!(
        set_secret(&env, &["db-password"], &format!("{value}-2")).code,
        0
    );
    assert_eq!(set_secret(&env, &["old-token"], value).code, 0);
    let rm = env.ballast(&["secret", "rm", "old-token"]);
    assert_eq!(rm.code, 0, "{rm}");
    let rotate = env.ballast(&["secret", "rotate-key"]);
    assert_eq!(rotate.code, 0, "{rotate}");

    let audit = env.ballast(&["audit", "-o", "json"]);
    assert_eq!(audit.code, 0, "{audit}");
    let parsed: serde_json::Value = serde_json::from_str(&audit.stdout).expect("json");
    let rows = parsed["entries"].as_array().expect("entries").clone();
    let mut entries: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or_default().to_string(),
                r["summary"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    entries.reverse();
    let actions: Vec<&str> = entries.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "secret set",
            "secret set",
            "secret set",
            "secret rm",
            "secret rotate-key"
        ],
        "{entries:?}"
    );
    assert!(entries[0].1.contains("`db-password`") && entries[0].1.contains("version "));
    assert_ne!(entries[0].1, entries[1].1, "each set has its own version");
    assert!(entries[3].1.contains("`old-token`"), "{entries:?}");
    assert!(entries[4].1.contains("1 secret(s)"), "{entries:?}");
    let text = env.ballast(&["audit"]);
    assert!(text.stderr.contains("audit chain intact"), "{text}");
    assert!(!audit.stdout.contains(value) && !text.stdout.contains(value));

    let db = env.db_file().expect("sqlite").to_path_buf();
    for suffix in ["", "-wal", "-shm"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if let Ok(bytes) = std::fs::read(&path) {
            assert!(
                !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
                "the value is in {}",
                path.display()
            );
        }
    }
}

/// Weak spot: commands that only read fail on a database that does not exist, saying so, and
/// create nothing; `diff` plans against an empty record without creating one either.
#[test]
fn read_commands_never_create_a_database() {
    let env = Env::new("readonly");
    let dir = env.path("x");
    let db = dir.join("typo.db");
    let url = format!("sqlite://{}", db.display());
    for args in [
        &["audit"][..],
        &["secret", "list"],
        &["secret", "rm", "x"],
        &["secret", "rotate-key"],
        &["events"],
        &["get", "apps"],
        &["describe", "app/web"],
        &["history", "app/web"],
        &["tasks"],
        &["logs", "server/nas01"],
    ] {
        let mut all = vec!["--database-url", url.as_str()];
        all.extend_from_slice(args);
        let run = env.ballast(&all);
        assert_eq!(run.code, 1, "{args:?} fails:\n{run}");
        assert!(
            run.stderr
                .contains(&format!("no ballast database at {}", db.display()))
                && run.stderr.contains("`ballast init` creates it"),
            "{args:?} names the path and how to create it:\n{run}"
        );
        assert!(!dir.exists(), "{args:?} created {}", dir.display());
    }

    env.write("a.yaml", &env.app("web", ""));
    let diff = env.ballast(&["--database-url", &url, "diff"]);
    assert_eq!(diff.code, 1, "a plan with changes:\n{diff}");
    assert!(diff.stdout.contains("1 to add"), "{diff}");
    assert!(!dir.exists(), "diff created {}", dir.display());
}
