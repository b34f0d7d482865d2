//! The everyday workflow around apply: init, targeting, dry runs, refusing to act without
//! confirmation, and the same story on PostgreSQL.

mod common;

use common::Env;

#[test]
fn init_creates_the_database_and_a_private_key() {
    let env = Env::new("init");
    let run = env.ballast(&["init"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout.contains("sqlite") && run.stdout.contains("created, mode 0600"),
        "{run}"
    );
    assert!(env.db_file().unwrap().exists());
    let again = env.ballast(&["init"]);
    assert!(
        again.stdout.contains("kept"),
        "a second init keeps the key: {again}"
    );
}

#[test]
fn target_dry_run_and_confirmation() {
    let env = Env::new("target");
    env.write(
        "a.yaml",
        &format!("{}---\n{}", env.app("one", ""), env.app("two", "")),
    );

    let dry = env.ballast(&["apply", "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry}");
    assert!(dry.stdout.contains("Plan: 2 to add"), "{dry}");
    assert!(env.containers().is_empty(), "--dry-run changes nothing");

    // Standard input is not a terminal here, so apply cannot ask and must refuse.
    let refused = env.ballast(&["apply"]);
    assert_eq!(refused.code, 1, "{refused}");
    assert!(refused.stderr.contains("pass --yes"), "{refused}");
    assert!(env.containers().is_empty());

    let target = format!("app/{}", env.name("one"));
    let one = env.ballast(&["apply", "--yes", "--target", &target]);
    assert_eq!(one.code, 0, "{one}");
    assert_eq!(env.containers(), vec![env.name("one")]);
    let bad = env.ballast(&["apply", "--yes", "--target", "one"]);
    assert_eq!(bad.code, 1, "{bad}");
    assert!(bad.stderr.contains("is not KIND/NAME"), "{bad}");
}

#[test]
fn apply_diff_and_drift_on_postgresql() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = runtime.block_on(ballast_test_support::postgres::postgres_url());
    let env = Env::new("pg").with_database(url);
    env.write(
        "a.yaml",
        &format!("{}---\n{}", env.app("web", ""), env.app("api", "")),
    );
    env.apply();
    assert_eq!(env.state_of("web").as_deref(), Some("running"));
    let again = env.apply();
    assert!(again.stdout.contains("No changes"), "{again}");
    env.docker(&["stop", "-t", "0", &env.name("api")]);
    assert_eq!(env.ballast(&["diff", "--refresh"]).code, 1);
    env.apply();
    assert_eq!(env.state_of("api").as_deref(), Some("running"));
    let tasks = env.json(&["tasks"]);
    assert_eq!(tasks.as_array().unwrap().len(), 3, "{tasks}");
    let audit = env.ballast(&["audit"]);
    assert!(
        audit.stderr.contains("audit chain intact (3 entries)"),
        "{audit}"
    );
}

#[test]
fn the_git_commit_of_the_manifests_is_recorded() {
    let env = Env::new("git");
    env.write("a.yaml", &env.app("web", ""));
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&env.manifests)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "first"]);
    let head = git(&["rev-parse", "HEAD"]);
    env.apply();
    let described = env.json(&["describe", &format!("app/{}", env.name("web"))]);
    assert_eq!(
        described["desired"]["gitCommit"],
        head.as_str(),
        "{described}"
    );
    assert_eq!(described["desired"]["gitDirty"], false);
    let audit = env.ballast(&["audit"]);
    assert!(
        audit.stdout.contains(&head[..10]),
        "the audit entry names the commit: {audit}"
    );

    env.write("a.yaml", &env.app("web", "  env: {CHANGED: \"yes\"}\n"));
    env.apply();
    let described = env.json(&["describe", &format!("app/{}", env.name("web"))]);
    assert_eq!(
        described["desired"]["gitDirty"], true,
        "uncommitted edits are flagged: {described}"
    );
}

#[test]
fn a_resource_leased_by_another_process_is_left_alone() {
    let env = Env::new("lease");
    env.write(
        "a.yaml",
        &format!("{}---\n{}", env.app("free", ""), env.app("held", "")),
    );
    assert_eq!(env.ballast(&["init"]).code, 0);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let lease = format!("App/{}", env.name("held"));
    runtime.block_on(async {
        let store = ballast_store::Store::open(&env.database_url).await.unwrap();
        let taken = store
            .try_acquire_lease(
                &lease,
                "daemon 1@elsewhere",
                std::time::Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert!(taken);
    });
    let run = env.ballast(&["apply", "--yes"]);
    // Left to its holder, which is not a failure of the resource.
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout
            .contains(&format!("NOT TOUCHED {lease}: held by daemon 1@elsewhere"))
            && run
                .stdout
                .contains("1 not touched (held by daemon 1@elsewhere)"),
        "{run}"
    );
    assert_eq!(env.state_of("free").as_deref(), Some("running"));
    assert!(
        env.inspect("held").is_none(),
        "a leased resource is not touched"
    );
}
