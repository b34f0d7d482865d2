//! Reliability of the Docker side, through the real binary and the real engine (issue 8):
//! networks shared by apps applied in parallel or by two processes at once, duplicate networks
//! (ballast's own are repaired, hand-made ones reported), containers left half-made by a failed
//! or interrupted create, snapshots that change only when a fact changes, and `metadata` changes
//! that the diff shows and apply records.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use ballast_test_support::docker::engine;
use common::Env;

/// A test's installation plus the networks it makes; removes its containers, then its
/// networks (a network in use cannot be removed), also when the test panics.
struct World {
    env: Env,
    networks: Vec<String>,
}

impl World {
    fn new(test: &str) -> World {
        World {
            env: Env::new(test),
            networks: Vec::new(),
        }
    }

    /// A network name unique to this test, removed at the end.
    fn network(&mut self, short: &str) -> String {
        let name = self.env.name(short);
        self.networks.push(name.clone());
        name
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for name in self.env.containers() {
            let _ = self.env.docker(&["rm", "-f", &name]);
        }
        for name in &self.networks {
            for id in network_ids(&self.env, name) {
                let _ = self.env.docker(&["network", "rm", &id]);
            }
        }
    }
}

/// Full ids of the networks named exactly `name` (Docker's name filter matches substrings).
fn network_ids(env: &Env, name: &str) -> Vec<String> {
    let run = env.docker(&[
        "network",
        "ls",
        "--no-trunc",
        "--filter",
        &format!("name={name}"),
        "--format",
        "{{.ID}} {{.Name}}",
    ]);
    assert_eq!(run.code, 0, "docker network ls: {run}");
    run.stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, n)| *n == name)
        .map(|(id, _)| id.to_string())
        .collect()
}

/// Creates a network straight through the API, without the duplicate check the docker CLI
/// asks for: how two racing creators (or a hand-made mistake) leave two networks of one name on
/// an engine of API 1.41. Returns its id.
fn create_network_unchecked(name: &str, labels: &[(&str, &str)]) -> String {
    let labels: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
        .collect();
    let body = serde_json::json!({"Name": name, "Driver": "bridge", "Labels": labels}).to_string();
    let mut stream = UnixStream::connect(engine().socket()).expect("engine socket");
    write!(
        stream,
        "POST /networks/create HTTP/1.0\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let json = answer
        .find('{')
        .map(|at| &answer[at..])
        .unwrap_or_else(|| panic!("no JSON in the engine's answer: {answer}"));
    let created: serde_json::Value = serde_json::from_str(json.trim())
        .unwrap_or_else(|e| panic!("engine answer is not JSON ({e}): {answer}"));
    created["Id"]
        .as_str()
        .unwrap_or_else(|| panic!("no Id in {answer}"))
        .to_string()
}

/// The ballast store's instance id, from the labels of a container it made.
fn instance_of(env: &Env, short: &str) -> String {
    env.inspect(short).expect("container")["Config"]["Labels"]["ballast.instance"]
        .as_str()
        .expect("instance label")
        .to_string()
}

/// The names of the networks a container is attached to.
fn attached(env: &Env, short: &str) -> Vec<String> {
    let inspect = env.inspect(short).expect("container");
    let mut names: Vec<String> = inspect["NetworkSettings"]["Networks"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn output(run: &common::Run) -> String {
    format!("{}{}", run.stdout, run.stderr)
}

#[test]
fn parallel_apps_sharing_a_network_make_one_network_and_all_run() {
    let mut world = World::new("netpar");
    let net = world.network("net");
    let env = &world.env;
    let count = 20;
    let docs: Vec<String> = (0..count)
        .map(|i| env.app(&format!("a{i:02}"), &format!("  networks: [{net}]\n")))
        .collect();
    env.write("apps.yaml", &docs.join("---\n"));

    let run = env.ballast(&["apply", "--yes", "--parallelism", "8"]);
    assert_eq!(run.code, 0, "all apps converge:\n{run}");
    assert_eq!(network_ids(env, &net).len(), 1, "one network `{net}`");
    for i in 0..count {
        let short = format!("a{i:02}");
        assert_eq!(env.state_of(&short).as_deref(), Some("running"), "{short}");
        assert_eq!(attached(env, &short), vec![net.clone()], "{short}");
    }
    assert_eq!(
        env.ballast(&["apply", "--yes"]).code,
        0,
        "a later apply too"
    );
}

#[test]
fn two_applies_at_once_on_a_shared_network_make_one_network() {
    let mut world = World::new("net2p");
    let net = world.network("net");
    let other = Env::new("net2p-b");
    let count = 8;
    for env in [&world.env, &other] {
        let docs: Vec<String> = (0..count)
            .map(|i| env.app(&format!("a{i}"), &format!("  networks: [{net}]\n")))
            .collect();
        env.write("apps.yaml", &docs.join("---\n"));
        // The store and its key exist before the race, so both processes start at once.
        assert_eq!(env.ballast(&["init"]).code, 0);
    }
    let spawned: Vec<_> = [&world.env, &other]
        .iter()
        .map(|env| {
            env.command()
                .args(["apply", "--yes", "--parallelism", "8"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start apply")
        })
        .collect();
    for child in spawned {
        let run: common::Run = child.wait_with_output().expect("apply ends").into();
        assert_eq!(run.code, 0, "each apply converges:\n{run}");
    }
    assert_eq!(
        network_ids(&world.env, &net).len(),
        1,
        "one network `{net}`"
    );
    for env in [&world.env, &other] {
        for i in 0..count {
            let short = format!("a{i}");
            assert_eq!(env.state_of(&short).as_deref(), Some("running"), "{short}");
            assert_eq!(attached(env, &short), vec![net.clone()], "{short}");
        }
    }
    drop(other);
}

#[test]
fn duplicate_networks_ballast_made_are_repaired_by_the_next_apply() {
    let mut world = World::new("netdup");
    let net = world.network("net");
    let env = &world.env;
    env.write("a.yaml", &env.app("first", ""));
    env.apply();
    let instance = instance_of(env, "first");
    let labels = [
        ("ballast.managed", "true"),
        ("ballast.instance", instance.as_str()),
    ];
    let oldest = create_network_unchecked(&net, &labels);
    std::thread::sleep(Duration::from_millis(50));
    let twin = create_network_unchecked(&net, &labels);
    assert_ne!(oldest, twin);
    assert_eq!(network_ids(env, &net).len(), 2, "the ambiguity is set up");

    env.write(
        "b.yaml",
        &env.app("user", &format!("  networks: [{net}]\n")),
    );
    let run = env.ballast(&["apply", "--yes"]);
    assert_eq!(
        run.code, 0,
        "the ambiguity ballast made is repaired:\n{run}"
    );
    assert_eq!(
        network_ids(env, &net),
        vec![oldest.clone()],
        "the oldest is kept"
    );
    assert_eq!(env.state_of("user").as_deref(), Some("running"));
    let inspect = env.inspect("user").unwrap();
    assert_eq!(
        inspect["NetworkSettings"]["Networks"][&net]["NetworkID"],
        serde_json::Value::String(oldest),
        "attached to the network kept"
    );
    let log = env.json(&["describe", &format!("app/{}", env.name("user"))]);
    let lines = log["recentTasks"][0]["log"].to_string();
    assert!(
        lines.contains("removed duplicate network"),
        "the repair is in the task log: {lines}"
    );
}

#[test]
fn duplicate_networks_made_by_hand_are_reported_with_what_to_do() {
    let mut world = World::new("nethand");
    let net = world.network("net");
    let env = &world.env;
    let first = create_network_unchecked(&net, &[]);
    std::thread::sleep(Duration::from_millis(50));
    let second = create_network_unchecked(&net, &[]);
    env.write(
        "a.yaml",
        &env.app("user", &format!("  networks: [{net}]\n")),
    );

    let run = env.ballast(&["apply", "--yes"]);
    assert_eq!(run.code, 1, "the apply fails:\n{run}");
    let text = output(&run);
    assert!(
        text.contains(&format!("network `{net}` is ambiguous")),
        "says what is wrong:\n{run}"
    );
    for id in [&first, &second] {
        assert!(text.contains(&id[..12]), "names network {id}:\n{run}");
    }
    assert!(
        text.contains("docker network rm"),
        "says what to do:\n{run}"
    );
    let mut left = network_ids(env, &net);
    left.sort();
    let mut made = vec![first, second];
    made.sort();
    assert_eq!(left, made, "networks ballast did not make are left alone");
    assert!(
        env.inspect("user").is_none(),
        "no container was made for it"
    );
}

#[test]
fn a_container_missing_a_network_is_replaced_not_adopted() {
    let mut world = World::new("halfnet");
    let (front, back) = (world.network("front"), world.network("back"));
    let env = &world.env;
    env.write(
        "a.yaml",
        &env.app("web", &format!("  networks: [{front}, {back}]\n")),
    );
    env.apply();
    assert_eq!(attached(env, "web"), {
        let mut both = vec![front.clone(), back.clone()];
        both.sort();
        both
    });

    // What a crash between create and connecting the second network leaves: the container,
    // with ballast's labels and the same spec hash, created on the first network only.
    let inspect = env.inspect("web").unwrap();
    let name = env.name("web");
    assert_eq!(env.docker(&["rm", "-f", &name]).code, 0);
    let mut args: Vec<String> = vec!["create".into(), "--name".into(), name.clone()];
    args.extend(["--network".into(), front.clone()]);
    for (k, v) in inspect["Config"]["Labels"].as_object().unwrap() {
        args.extend(["--label".into(), format!("{k}={}", v.as_str().unwrap())]);
    }
    args.push(env.image());
    for part in inspect["Config"]["Cmd"].as_array().unwrap() {
        args.push(part.as_str().unwrap().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let made = env.docker(&args);
    assert_eq!(made.code, 0, "{made}");
    assert_eq!(attached(env, "web"), vec![front.clone()]);

    let diff = env.ballast(&["diff", "--refresh"]);
    assert_eq!(diff.code, 1, "{diff}");
    assert!(
        diff.stdout.contains("must be replaced") && diff.stdout.contains(&back),
        "a container missing part of its setup is replaced, saying why:\n{diff}"
    );
    let run = env.apply();
    assert!(run.stdout.contains("replaced"), "{run}");
    assert_eq!(env.state_of("web").as_deref(), Some("running"));
    assert_eq!(attached(env, "web").len(), 2, "both networks");
    assert_eq!(env.ballast(&["diff", "--refresh"]).code, 0, "in sync");
}

#[test]
fn a_failure_after_create_removes_the_container_it_made() {
    let world = World::new("halfport");
    let env = &world.env;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = listener.local_addr().unwrap().port();
    env.write(
        "a.yaml",
        &env.app("web", &format!("  ports: [\"127.0.0.1:{busy}:80\"]\n")),
    );
    let run = env.ballast(&["apply", "--yes"]);
    assert_eq!(run.code, 1, "the start fails:\n{run}");
    assert!(
        env.inspect("web").is_none(),
        "the container this action created is removed, not left to be adopted"
    );
    let described = env.json(&["describe", &format!("app/{}", env.name("web"))]);
    let log = described["recentTasks"][0]["log"].to_string();
    assert!(
        log.contains("failed at step start container"),
        "the failed step is in the task log: {log}"
    );
    assert!(
        log.contains("removed the container this action created"),
        "the clean-up is in the task log: {log}"
    );
    // With nothing left over, the next apply simply creates it again.
    let diff = env.ballast(&["diff"]);
    assert!(diff.stdout.contains("will be created"), "{diff}");

    drop(listener);
    env.apply();
    assert_eq!(env.state_of("web").as_deref(), Some("running"));
}

#[test]
fn an_unchanged_running_app_writes_no_new_snapshot() {
    let world = World::new("snap");
    let env = &world.env;
    env.write("a.yaml", &env.app("web", ""));
    env.apply();
    let history = |env: &Env| {
        env.json(&["history", &format!("app/{}", env.name("web"))])
            .as_array()
            .unwrap()
            .clone()
    };
    let before = history(env);
    // Docker's status text goes from "Up Less than a second" to "Up 2 seconds".
    std::thread::sleep(Duration::from_millis(2500));
    env.apply();
    let after = history(env);
    assert_eq!(
        after.len(),
        before.len(),
        "no snapshot for an unchanged app: {after:#?}"
    );
    let state = &after.last().unwrap()["state"];
    assert_eq!(state["state"], "running", "{state}");
    assert!(state.get("status").is_none(), "no clock text: {state}");
}

#[test]
fn a_metadata_labels_change_shows_in_diff_and_is_applied() {
    let world = World::new("meta");
    let env = &world.env;
    let name = env.name("web");
    let with_team = |team: &str| {
        env.app("web", "").replacen(
            &format!("  name: {name}\n"),
            &format!("  name: {name}\n  labels:\n    team: {team}\n"),
            1,
        )
    };
    env.write("a.yaml", &with_team("a"));
    env.apply();
    let id = env.inspect("web").unwrap()["Id"].clone();

    env.write("a.yaml", &with_team("b"));
    let diff = env.ballast(&["diff"]);
    assert_eq!(diff.code, 1, "a labels change is a change:\n{diff}");
    assert!(
        diff.stdout
            .contains(&format!("~ App/{name} will be updated in place")),
        "{diff}"
    );
    let changed = |sign: char, text: &str| {
        diff.stdout
            .lines()
            .any(|l| l.trim_start().starts_with(sign) && l.contains(text))
    };
    assert!(changed('-', "team: a") && changed('+', "team: b"), "{diff}");
    assert!(
        diff.stdout
            .contains("Plan: 0 to add, 1 to change, 0 to replace, 0 to delete."),
        "{diff}"
    );

    env.apply();
    assert_eq!(
        env.inspect("web").unwrap()["Id"],
        id,
        "metadata does not reach the container: it is not replaced"
    );
    let got = env.json(&["get", "apps", &name]);
    assert_eq!(
        got[0]["desired"]["metadata"]["labels"]["team"], "b",
        "{got}"
    );
    assert_eq!(got[0]["generation"], 2, "{got}");
    let again = env.ballast(&["diff"]);
    assert_eq!(again.code, 0, "applied:\n{again}");
}
