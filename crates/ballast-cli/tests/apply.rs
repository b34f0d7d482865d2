//! `ballast apply`, `diff` and the read commands end to end: the real binary, a real Docker
//! engine, a real SQLite file.

mod common;

use common::Env;

#[test]
fn apply_from_scratch_creates_every_field_and_records_it() {
    let env = Env::new("scratch");
    env.write(
        "apps.yaml",
        &format!(
            "{}---\n{}",
            env.app(
                "web",
                "  env:\n    GREETING: hello\n    PORT: 8080\n  ports: [\"127.0.0.1:0:8080\"]\n  volumes: [\"SCRATCHVOL:/data\", \"/tmp:/host-tmp:ro\"]\n  restart: unless-stopped\n  labels: {team: ops}\n  workingDir: /data\n  user: \"1000\"\n  resources: {memory: 64m, cpus: 0.5}\n  healthcheck:\n    test: [CMD, \"true\"]\n    interval: 30s\n",
            )
            .replace("SCRATCHVOL", &env.name("data"))
            .replace("127.0.0.1:0:8080", "127.0.0.1:18934:8080"),
            env.app("worker", &format!("  dependsOn: [{}]\n", env.name("web")))
        ),
    );
    let first = env.ballast(&["diff"]);
    assert_eq!(first.code, 1, "diff with changes exits 1:\n{first}");
    assert!(
        first
            .stdout
            .contains(&format!("+ App/{} will be created", env.name("web"))),
        "{first}"
    );
    assert!(
        first
            .stdout
            .contains("Plan: 2 to add, 0 to change, 0 to replace, 0 to delete."),
        "{first}"
    );

    let run = env.apply();
    assert!(run.stdout.contains("Apply complete: 2 created"), "{run}");

    let web = env.inspect("web").expect("web container");
    assert_eq!(web["State"]["Status"], "running");
    let config = &web["Config"];
    let envs: Vec<&str> = config["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        envs.contains(&"GREETING=hello") && envs.contains(&"PORT=8080"),
        "{envs:?}"
    );
    assert_eq!(config["Labels"]["team"], "ops");
    assert_eq!(config["Labels"]["ballast.managed"], "true");
    assert_eq!(config["WorkingDir"], "/data");
    assert_eq!(config["User"], "1000");
    assert_eq!(config["Cmd"][0], "sh");
    assert_eq!(
        config["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "true"])
    );
    let host = &web["HostConfig"];
    assert_eq!(host["RestartPolicy"]["Name"], "unless-stopped");
    assert_eq!(host["Memory"], 64 << 20);
    assert_eq!(host["NanoCpus"], 500_000_000);
    assert_eq!(host["PortBindings"]["8080/tcp"][0]["HostPort"], "18934");
    let mounts = web["Mounts"].as_array().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["Type"] == "volume" && m["Name"] == env.name("data")),
        "{mounts:?}"
    );
    assert!(
        mounts
            .iter()
            .any(|m| m["Type"] == "bind" && m["Source"] == "/tmp" && m["RW"] == false),
        "{mounts:?}"
    );
    assert_eq!(env.state_of("worker").as_deref(), Some("running"));

    // What the store recorded, as a user reads it back.
    let get = env.ballast(&["get", "apps"]);
    assert!(
        get.stdout.contains(&env.name("web")) && get.stdout.contains("running"),
        "{get}"
    );
    let tasks = env.json(&["tasks"]);
    let tasks = tasks.as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    assert!(
        tasks
            .iter()
            .all(|t| t["status"] == "succeeded" && t["action"] == "create"),
        "{tasks:?}"
    );
    let history = env.json(&["history", &format!("app/{}", env.name("web"))]);
    assert_eq!(history[0]["change"], "created", "{history}");
    let describe = env.ballast(&["describe", &format!("app/{}", env.name("web"))]);
    assert!(
        describe.stdout.contains("Generation: 1") && describe.stdout.contains("create"),
        "{describe}"
    );
    let audit = env.ballast(&["audit"]);
    assert_eq!(audit.code, 0, "{audit}");
    assert!(
        audit.stdout.contains("2 created") && audit.stderr.contains("audit chain intact"),
        "{audit}"
    );
    let _ = env.docker(&["volume", "rm", "-f", &env.name("data")]);
}

#[test]
fn second_apply_of_unchanged_manifests_makes_no_mutating_docker_call() {
    let env = Env::new("idem");
    env.write(
        "a.yaml",
        &format!(
            "{}---\n{}",
            env.app("one", ""),
            env.app("two", "  state: stopped\n")
        ),
    );
    env.apply();
    let counter = ballast_test_support::docker::CallCounter::start();
    let diff = env.ballast_via(&counter.docker_host(), &["diff", "--refresh"]);
    assert_eq!(diff.code, 0, "{diff}");
    assert!(diff.stdout.contains("No changes"), "{diff}");
    counter.reset();
    let run = env.ballast_via(&counter.docker_host(), &["apply", "--yes"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("No changes"), "{run}");
    let calls = counter.calls();
    assert!(
        counter.mutating().is_empty(),
        "mutating calls on a no-op apply: {calls:?}"
    );
    let lists = calls
        .iter()
        .filter(|(m, p)| m == "GET" && p.starts_with("/containers/json"))
        .count();
    assert_eq!(lists, 1, "one container list call: {calls:?}");
    assert_eq!(
        calls.len(),
        1 + calls
            .iter()
            .filter(|(_, p)| p.starts_with("/_ping") || p == "/version")
            .count(),
        "{calls:?}"
    );
}

#[test]
fn a_spec_change_replaces_the_container_and_keeps_its_volume() {
    let env = Env::new("change");
    let volume = env.name("vol");
    env.write(
        "a.yaml",
        &env.app(
            "db",
            &format!("  env: {{MODE: one}}\n  volumes: [\"{volume}:/data\"]\n"),
        ),
    );
    env.apply();
    let before = env.inspect("db").unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let wrote = env.docker(&[
        "exec",
        &env.name("db"),
        "sh",
        "-c",
        "echo kept > /data/file",
    ]);
    assert_eq!(wrote.code, 0, "{wrote}");

    env.write(
        "a.yaml",
        &env.app(
            "db",
            &format!("  env: {{MODE: two}}\n  volumes: [\"{volume}:/data\"]\n"),
        ),
    );
    let diff = env.ballast(&["diff", "--refresh"]);
    assert_eq!(diff.code, 1, "{diff}");
    assert!(
        diff.stdout.contains(&format!(
            "-/+ App/{} must be replaced (spec changed)",
            env.name("db")
        )),
        "{diff}"
    );
    assert!(
        diff.stdout.contains("-     MODE: one") && diff.stdout.contains("+     MODE: two"),
        "{diff}"
    );
    assert!(
        diff.stdout
            .contains("Plan: 0 to add, 0 to change, 1 to replace, 0 to delete."),
        "{diff}"
    );

    env.apply();
    let after = env.inspect("db").unwrap();
    assert_ne!(
        after["Id"].as_str().unwrap(),
        before,
        "container was recreated"
    );
    let read = env.docker(&["exec", &env.name("db"), "cat", "/data/file"]);
    assert_eq!(
        read.stdout.trim(),
        "kept",
        "named volume survives a replace: {read}"
    );
    let describe = env.ballast(&["describe", &format!("app/{}", env.name("db"))]);
    assert!(describe.stdout.contains("Generation: 2"), "{describe}");
    assert_eq!(env.containers().len(), 1);
    let _ = env.docker(&["rm", "-f", &env.name("db")]);
    let _ = env.docker(&["volume", "rm", "-f", &volume]);
}

#[test]
fn drift_is_found_by_diff_refresh_and_repaired_by_apply() {
    let env = Env::new("drift");
    env.write(
        "a.yaml",
        &format!("{}---\n{}", env.app("stopme", ""), env.app("rmme", "")),
    );
    env.apply();
    env.docker(&["stop", "-t", "0", &env.name("stopme")]);
    env.docker(&["rm", "-f", &env.name("rmme")]);

    // Without --refresh, diff trusts the recorded state, which still says all is well.
    let recorded = env.ballast(&["diff"]);
    assert_eq!(recorded.code, 0, "{recorded}");
    let live = env.ballast(&["diff", "--refresh"]);
    assert_eq!(live.code, 1, "{live}");
    assert!(
        live.stdout.contains(&format!(
            "~ App/{} will be updated in place (container is exited, want running)",
            env.name("stopme")
        )),
        "{live}"
    );
    assert!(
        live.stdout.contains("-   state: stopped") && live.stdout.contains("+   state: running"),
        "{live}"
    );
    assert!(
        live.stdout
            .contains(&format!("+ App/{} will be created", env.name("rmme"))),
        "{live}"
    );
    assert!(
        live.stdout
            .contains("Plan: 1 to add, 1 to change, 0 to replace, 0 to delete."),
        "{live}"
    );

    env.apply();
    assert_eq!(env.state_of("stopme").as_deref(), Some("running"));
    assert_eq!(env.state_of("rmme").as_deref(), Some("running"));
    let history = env.json(&["history", &format!("app/{}", env.name("rmme"))]);
    let changes: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["change"].as_str().unwrap())
        .collect();
    assert!(
        changes.contains(&"deleted") || changes.len() >= 2,
        "history records the drift: {changes:?}"
    );
    assert_eq!(env.ballast(&["diff", "--refresh"]).code, 0);
}

#[test]
fn prune_deletes_only_what_ballast_created_and_only_when_asked() {
    let env = Env::new("prune");
    env.write("keep.yaml", &env.app("keep", ""));
    env.write("gone.yaml", &env.app("gone", ""));
    env.apply();
    // A container ballast did not create, with a name that looks like ours.
    let foreign = env.name("foreign");
    let made = env.docker(&[
        "run",
        "-d",
        "--name",
        &foreign,
        &env.image(),
        "sleep",
        "3600",
    ]);
    assert_eq!(made.code, 0, "{made}");

    env.remove("gone.yaml");
    let kept = env.apply();
    assert!(kept.stdout.contains("use --prune to delete"), "{kept}");
    assert!(env.inspect("gone").is_some(), "not deleted without --prune");

    let diff = env.ballast(&["diff", "--prune", "--refresh"]);
    assert!(
        diff.stdout
            .contains(&format!("- App/{} will be deleted", env.name("gone"))),
        "{diff}"
    );
    let pruned = env.ballast(&["apply", "--yes", "--prune"]);
    assert_eq!(pruned.code, 0, "{pruned}");
    assert!(env.inspect("gone").is_none(), "pruned");
    assert!(env.inspect("keep").is_some());
    assert!(
        env.inspect("foreign").is_some(),
        "a container ballast did not create is never pruned"
    );

    // An empty manifest directory with --prune is refused rather than deleting everything.
    env.remove("keep.yaml");
    let refused = env.ballast(&["apply", "--yes", "--prune"]);
    assert_ne!(refused.code, 0, "{refused}");
    assert!(refused.stderr.contains("refusing to --prune"), "{refused}");
    assert!(env.inspect("keep").is_some());
}

#[test]
fn apps_start_in_depends_on_order() {
    let env = Env::new("order");
    // Written in reverse so manifest order cannot explain the result.
    let c = env.app("c", &format!("  dependsOn: [{}]\n", env.name("b")));
    let b = env.app("b", &format!("  dependsOn: [{}]\n", env.name("a")));
    let a = env.app("a", "");
    env.write("apps.yaml", &format!("{c}---\n{b}---\n{a}"));
    env.apply();
    let started = |s: &str| {
        env.inspect(s).unwrap()["State"]["StartedAt"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let created = |s: &str| {
        env.inspect(s).unwrap()["Created"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // RFC 3339 with nanoseconds in UTC sorts as text.
    assert!(started("a") <= created("b"), "b created after a started");
    assert!(started("b") <= created("c"), "c created after b started");
}

#[test]
fn failures_are_clear_tasks_and_the_other_apps_still_converge() {
    let env = Env::new("fail");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = listener.local_addr().unwrap().port();
    env.write(
        "a.yaml",
        &format!(
            "{}---\n{}---\n{}---\n{}",
            env.app("good", ""),
            env.app("noimage", "")
                .replace(&env.image(), "ballast-test/missing:1"),
            env.app("pull", "")
                .replace(&env.image(), "registry.invalid/ballast/missing:1")
                .replace("pullPolicy: Never", "pullPolicy: Always"),
            env.app("port", &format!("  ports: [\"127.0.0.1:{busy}:80\"]\n")),
        ),
    );
    let run = env.ballast(&["apply", "--yes"]);
    assert_eq!(run.code, 1, "something failed, exit says so:\n{run}");
    assert_eq!(env.state_of("good").as_deref(), Some("running"));
    assert!(
        run.stdout.contains(
            "image `ballast-test/missing:1` is not on the engine and pullPolicy is Never"
        ),
        "{run}"
    );
    assert!(
        run.stdout
            .contains("cannot pull image `registry.invalid/ballast/missing:1`"),
        "{run}"
    );
    assert!(
        run.stdout
            .contains(&format!("host port {busy} is already in use")),
        "{run}"
    );
    let failed = env.json(&["tasks", "--failed"]);
    assert_eq!(failed.as_array().unwrap().len(), 3, "{failed}");
    drop(listener);
}

#[test]
fn invalid_manifests_apply_nothing_and_say_where() {
    let env = Env::new("invalid");
    env.write("good.yaml", &env.app("fine", ""));
    env.write("bad.yaml", &env.app("broken", "  ports: [\"99999:80\"]\n"));
    let run = env.ballast(&["apply", "--yes"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("bad.yaml:9:11: spec.ports[0]: host port 99999 is out of range"),
        "{run}"
    );
    assert!(run.stderr.contains("nothing was applied"), "{run}");
    assert!(
        env.containers().is_empty(),
        "nothing created from an invalid set"
    );
    let diff = env.ballast(&["diff"]);
    assert_eq!(diff.code, 2, "diff exits 2 on error:\n{diff}");
    let validate = env.ballast(&["validate"]);
    assert_eq!(validate.code, 1, "{validate}");
}

#[test]
fn diff_json_is_a_plan_for_scripts() {
    let env = Env::new("json");
    env.write("a.yaml", &env.app("x", ""));
    let plan = env.json(&["diff"]);
    assert_eq!(plan["summary"]["add"], 1);
    assert_eq!(plan["resources"][0]["action"], "create");
    assert_eq!(plan["resources"][0]["key"]["name"], env.name("x"));
}
