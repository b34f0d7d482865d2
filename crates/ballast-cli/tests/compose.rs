//! `ballast import compose` end to end, against docker compose v2 on the same engine.
//!
//! The differential tests run `docker compose up -d` on compose files that together use every
//! field ballast imports (with the offline test image), record `docker inspect` of each
//! container, take the project down, then `ballast import compose` + `ballast apply` the same
//! files under another project name, and compare the two containers field by field. Names are
//! the only thing set aside: container names and ids, the project prefix of networks and
//! volumes, and both tools' own labels. Values that mean the same to the engine are written
//! one way first (an empty list and none, `80` and `80/tcp`, the order of `Env`). `files:`
//! are delivered differently on purpose (compose bind-mounts a config file from this
//! machine, ballast writes it into the container through the engine's API), so their mount is
//! left out and their content compared inside the containers instead. GPUs are not in the
//! differential: no engine here has a GPU runtime to start such a container (their mapping is
//! tested from a table in ballast-docker). Every other difference fails the test.

mod common;

use std::collections::BTreeMap;

use ballast_test_support::compose::compose;
use common::Env;
use serde_json::{Value, json};

/// The fields compared, as JSON pointers into `docker inspect`.
const FIELDS: &[&str] = &[
    "/Config/Hostname",
    "/Config/Domainname",
    "/Config/ExposedPorts",
    "/Config/Env",
    "/Config/User",
    "/Config/WorkingDir",
    "/Config/Healthcheck",
    "/Config/StopSignal",
    "/Config/StopTimeout",
    "/Config/Tty",
    "/Config/OpenStdin",
    "/Config/Cmd",
    "/Config/Entrypoint",
    "/HostConfig/CapAdd",
    "/HostConfig/CapDrop",
    "/HostConfig/SecurityOpt",
    "/HostConfig/ReadonlyRootfs",
    "/HostConfig/NetworkMode",
    "/HostConfig/Tmpfs",
    "/HostConfig/Init",
    "/HostConfig/Dns",
    "/HostConfig/DnsSearch",
    "/HostConfig/ExtraHosts",
    "/HostConfig/Ulimits",
    "/HostConfig/PidsLimit",
    "/HostConfig/Sysctls",
    "/HostConfig/LogConfig",
    "/HostConfig/Devices",
    "/HostConfig/Privileged",
    "/HostConfig/ShmSize",
    "/HostConfig/Memory",
    "/HostConfig/MemorySwap",
    "/HostConfig/NanoCpus",
    "/HostConfig/RestartPolicy",
    "/HostConfig/PortBindings",
];

/// An empty list, map or text and no value at all mean the same to the engine.
fn empty_is_none(v: &Value) -> Value {
    match v {
        Value::Array(a) if a.is_empty() => Value::Null,
        Value::Object(o) if o.is_empty() => Value::Null,
        Value::String(s) if s.is_empty() => Value::Null,
        other => other.clone(),
    }
}

struct Names<'a> {
    project: &'a str,
    /// Container id and name → service, for `container:` network modes.
    services: &'a BTreeMap<String, String>,
}

impl Names<'_> {
    fn strip(&self, text: &str) -> String {
        text.replace(&format!("{}_", self.project), "PROJECT_")
    }
}

/// The compared view of one container.
fn view(inspect: &Value, names: &Names<'_>, file_targets: &[&str]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let id = inspect["Id"].as_str().unwrap_or_default();
    for field in FIELDS {
        let mut v = empty_is_none(inspect.pointer(field).unwrap_or(&Value::Null));
        match *field {
            "/Config/Env" => {
                let mut env: Vec<String> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.as_str().map(String::from))
                    .collect();
                env.sort();
                v = json!(env);
            }
            "/Config/ExposedPorts" => {
                let mut keys: Vec<String> = v
                    .as_object()
                    .into_iter()
                    .flat_map(|o| o.keys())
                    .map(|k| {
                        if k.contains('/') {
                            k.clone()
                        } else {
                            format!("{k}/tcp")
                        }
                    })
                    .collect();
                keys.sort();
                v = if keys.is_empty() {
                    Value::Null
                } else {
                    json!(keys)
                };
            }
            "/Config/Hostname" => {
                // Without `hostname` a container's is the start of its id, or of the id of the
                // container whose network stack it joined.
                if let Some(h) = v.as_str()
                    && let Some((_, service)) =
                        names.services.iter().find(|(key, _)| key.starts_with(h))
                {
                    v = json!(format!("<id of {service}>"));
                }
            }
            // Compose writes these from a Go map, in no order; the engine keeps them as a set.
            "/HostConfig/ExtraHosts" | "/HostConfig/Ulimits" => {
                if let Value::Array(items) = &mut v {
                    items.sort_by_key(|i| i.to_string());
                }
            }
            "/HostConfig/NetworkMode" => {
                let mode = v.as_str().unwrap_or_default().to_string();
                v = match mode.strip_prefix("container:") {
                    Some(other) => json!(format!(
                        "container:{}",
                        names
                            .services
                            .iter()
                            .find(|(key, _)| key.as_str() == other || key.starts_with(other))
                            .map_or(other, |(_, s)| s.as_str())
                    )),
                    None => json!(names.strip(&mode)),
                };
            }
            _ => {}
        }
        out.insert(field.to_string(), v);
    }
    let mut mounts: Vec<Value> = inspect["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| !file_targets.contains(&m["Destination"].as_str().unwrap_or_default()))
        .map(|m| {
            let source = match m["Type"].as_str() {
                Some("volume") => names.strip(m["Name"].as_str().unwrap_or_default()),
                _ => m["Source"].as_str().unwrap_or_default().to_string(),
            };
            json!({"type": m["Type"], "source": source, "destination": m["Destination"], "rw": m["RW"]})
        })
        .collect();
    mounts.sort_by_key(|m| m["destination"].to_string());
    out.insert("/Mounts".into(), json!(mounts));
    let container_name = inspect["Name"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches('/');
    let mut networks = BTreeMap::new();
    for (net, settings) in inspect["NetworkSettings"]["Networks"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let mut aliases: Vec<String> = settings["Aliases"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str())
            .filter(|a| *a != container_name && !id.starts_with(a))
            .map(String::from)
            .collect();
        aliases.sort();
        networks.insert(names.strip(net), json!(aliases));
    }
    out.insert("network aliases".into(), json!(networks));
    out
}

/// Compose's container of a service (`PROJECT-SERVICE-1`) and ballast's (`PROJECT-SERVICE`).
fn inspect(env: &Env, name: &str) -> Value {
    let run = env.docker(&["inspect", name]);
    assert_eq!(run.code, 0, "inspect {name}:\n{run}");
    let parsed: Value = serde_json::from_str(&run.stdout).expect("inspect json");
    parsed[0].clone()
}

fn exec(env: &Env, container: &str, args: &[&str]) -> String {
    let mut all = vec!["exec", container];
    all.extend(args);
    let run = env.docker(&all);
    assert_eq!(run.code, 0, "docker exec {container} {args:?}:\n{run}");
    run.stdout
}

/// A host port for this test, away from the ones other tests use.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

const EVERYTHING: &str = r#"
services:
  db:
    image: IMAGE
    environment:
      DB_PASSWORD: s3cret-db-value
    healthcheck:
      test: ["CMD", "true"]
      interval: 2s
      timeout: 1s
      retries: 3
      start_period: 1s
  app:
    image: IMAGE
    hostname: app-host
    domainname: lab.example
    user: "0:0"
    working_dir: /tmp
    expose: ["9000", "53/udp", "7000-7001"]
    ports: ["127.0.0.1:PORT:80"]
    env_file: [app.env]
    environment:
      PLAIN: "1.50"
      FROM_DEFAULT: ${NOT_SET_ANYWHERE:-dflt}
      FROM_DOTENV: ${DOTENV_VALUE}
      API_TOKEN: s3cret-token-value
      OVERRIDDEN: by-environment
    cap_add: [NET_ADMIN, SYS_TIME]
    cap_drop: [MKNOD]
    security_opt: ["no-new-privileges:true"]
    tmpfs: ["/scratch:size=1m"]
    init: true
    dns: [10.0.0.53]
    dns_search: [lab.example]
    extra_hosts: ["nas:10.0.0.5", "other=10.0.0.6"]
    ulimits:
      nofile: {soft: 1024, hard: 2048}
      nproc: 512
    pids_limit: 100
    sysctls: {net.core.somaxconn: 1024}
    logging:
      driver: json-file
      options: {max-size: 1m, max-file: "2"}
    stop_signal: SIGINT
    stop_grace_period: 20s
    devices: ["/dev/null:/dev/xnull:rwm"]
    shm_size: 128m
    mem_limit: 64m
    memswap_limit: 128m
    cpus: 0.5
    stdin_open: true
    tty: true
    restart: unless-stopped
    volumes: [data:/data, ./conf:/conf:ro]
    networks:
      default:
        aliases: [application]
      back:
        aliases: [application]
    depends_on: [db]
    configs:
      - source: appconf
        target: /etc/app/app.ini
    healthcheck:
      test: "true"
      interval: 5s
networks:
  back: {}
volumes:
  data: {}
configs:
  appconf:
    file: ./conf/app.ini
"#;

const MODES: &str = r#"
x-base: &base
  image: IMAGE
  restart: "no"
services:
  vpn:
    <<: *base
    read_only: true
  side:
    <<: *base
    network_mode: "service:vpn"
    depends_on: [vpn]
  hostnet:
    <<: *base
    network_mode: host
    sysctls: [kernel.shmmax=65536]
  isolated:
    <<: *base
    network_mode: none
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
    deploy:
      resources:
        limits: {memory: 32m, cpus: "0.25", pids: 50}
"#;

/// Settings this sandbox cannot start a container with (every capability for `privileged`,
/// a GPU runtime for `gpus`): compared on containers created and not started, by both tools.
const CREATED_ONLY: &str = r#"
services:
  all-powers:
    image: IMAGE
    privileged: true
    gpus: all
  some-gpus:
    image: IMAGE
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              device_ids: ["0", "1"]
              capabilities: [gpu, utility]
"#;

/// Takes both projects down however the test ends: compose's with `down --volumes`,
/// ballast's networks and volumes by name (its containers go with the `Env`).
struct Projects<'a> {
    env: &'a Env,
    dir: std::path::PathBuf,
    compose: String,
    ballast: String,
}

impl Drop for Projects<'_> {
    fn drop(&mut self) {
        let _ = compose(
            &self.dir,
            &self.compose,
            &["compose.yaml"],
            &["down", "--volumes"],
        );
        for container in self.env.containers() {
            let _ = self.env.docker(&["rm", "-f", &container]);
        }
        for kind in ["network", "volume"] {
            for project in [&self.compose, &self.ballast] {
                let listed =
                    self.env
                        .docker(&[kind, "ls", "-q", "--filter", &format!("name={project}")]);
                for id in listed.stdout.lines() {
                    let _ = self.env.docker(&[kind, "rm", id]);
                }
            }
        }
    }
}

/// The differential run of one compose file: every service's container compared. `start`
/// false compares containers created and not started (`compose create`, `state: stopped`).
fn differential(
    test: &str,
    compose_text: &str,
    secrets: &[(&str, &str)],
    files: &[(&str, &str)],
    start: bool,
) -> BTreeMap<String, BTreeMap<String, Value>> {
    let env = Env::new(test);
    let dir = env.path("project");
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    std::fs::write(dir.join("conf/app.ini"), "[app]\nport = 80\n").unwrap();
    std::fs::write(
        dir.join("app.env"),
        "FROM_FILE=1\nQUOTED=\"a b\"\nOVERRIDDEN=by-file\n",
    )
    .unwrap();
    std::fs::write(dir.join(".env"), "DOTENV_VALUE=from-dotenv\n").unwrap();
    let text = compose_text
        .replace("IMAGE", &env.image())
        .replace("PORT", &free_port().to_string());
    std::fs::write(dir.join("compose.yaml"), &text).unwrap();
    let compose_project = format!("{}a", env.prefix);
    let ballast_project = format!("{}b", env.prefix);
    let _projects = Projects {
        env: &env,
        dir: dir.clone(),
        compose: compose_project.clone(),
        ballast: ballast_project.clone(),
    };
    let services: Vec<String> = {
        let model: Value = serde_saphyr::from_str(&text).unwrap();
        model["services"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };

    // docker compose first; its containers are inspected, then the project is taken down.
    let verb: &[&str] = if start {
        &["up", "-d", "--quiet-pull"]
    } else {
        &["create"]
    };
    let up = compose(&dir, &compose_project, &["compose.yaml"], verb);
    assert!(
        up.status.success(),
        "compose up:\n{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let mut compose_ids = BTreeMap::new();
    let mut by_compose = BTreeMap::new();
    let targets_of = |service: &str| -> Vec<&str> {
        files
            .iter()
            .filter(|(s, _)| *s == service)
            .map(|(_, t)| *t)
            .collect()
    };
    for service in &services {
        let container = format!("{compose_project}-{service}-1");
        let info = inspect(&env, &container);
        let file_targets = targets_of(service);
        compose_ids.insert(info["Id"].as_str().unwrap().to_string(), service.clone());
        compose_ids.insert(container.clone(), service.clone());
        let files: Vec<String> = file_targets
            .iter()
            .map(|t| exec(&env, &container, &["cat", t]))
            .collect();
        by_compose.insert(service.clone(), (info, files));
    }
    let down = compose(
        &dir,
        &compose_project,
        &["compose.yaml"],
        &["down", "--volumes"],
    );
    assert!(
        down.status.success(),
        "compose down:\n{}",
        String::from_utf8_lossy(&down.stderr)
    );

    // ballast on the same file, under another project name.
    let import = env
        .command()
        .current_dir(&dir)
        .args([
            "import",
            "compose",
            "compose.yaml",
            "-p",
            &ballast_project,
            "--out",
        ])
        .arg(&env.manifests)
        .output()
        .expect("run ballast import");
    let import: common::Run = import.into();
    assert_eq!(import.code, 0, "import:\n{import}");
    for (name, value) in secrets {
        assert!(!import.stderr.contains(value) && !import.stdout.contains(value));
        let secret = format!("{ballast_project}-{name}");
        assert!(
            import
                .stderr
                .contains(&format!("ballast secret set {secret}")),
            "{import}"
        );
        let mut child = env
            .command()
            .args(["secret", "set", &secret])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("secret set");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(value.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
    }
    if !start {
        for entry in std::fs::read_dir(&env.manifests).unwrap() {
            let path = entry.unwrap().path();
            let mut text = std::fs::read_to_string(&path).unwrap();
            text.push_str("  state: stopped\n");
            std::fs::write(&path, text).unwrap();
        }
    }
    env.apply();
    let mut differences = Vec::new();
    let mut compose_views = BTreeMap::new();
    let mut ballast_ids = BTreeMap::new();
    for service in &services {
        let container = format!("{ballast_project}-{service}");
        let info = inspect(&env, &container);
        ballast_ids.insert(info["Id"].as_str().unwrap().to_string(), service.clone());
        ballast_ids.insert(container.clone(), service.clone());
    }
    for service in &services {
        let container = format!("{ballast_project}-{service}");
        let file_targets = targets_of(service);
        let file_targets = file_targets.as_slice();
        let (theirs, their_files) = &by_compose[service];
        let ours = inspect(&env, &container);
        let a = view(
            theirs,
            &Names {
                project: &compose_project,
                services: &compose_ids,
            },
            file_targets,
        );
        let b = view(
            &ours,
            &Names {
                project: &ballast_project,
                services: &ballast_ids,
            },
            file_targets,
        );
        compose_views.insert(service.clone(), a.clone());
        for (field, value) in &a {
            if b.get(field) != Some(value) {
                differences.push(format!(
                    "{service} {field}:\n    compose: {value}\n    ballast: {}",
                    b.get(field).unwrap_or(&Value::Null)
                ));
            }
        }
        for (target, content) in file_targets.iter().zip(their_files) {
            let ours = exec(&env, &container, &["cat", target]);
            if &ours != content {
                differences.push(format!(
                    "{service} file {target}: compose {content:?}, ballast {ours:?}"
                ));
            }
        }
    }
    assert!(
        differences.is_empty(),
        "ballast's containers differ from docker compose's:\n{}",
        differences.join("\n")
    );
    compose_views
}

#[test]
fn every_supported_field_gives_the_container_compose_gives() {
    let views = differential(
        "compose-diff-all",
        EVERYTHING,
        &[
            ("db-db-password", "s3cret-db-value"),
            ("app-api-token", "s3cret-token-value"),
        ],
        &[("app", "/etc/app/app.ini")],
        true,
    );
    // The comparison is not vacuous: every field compared is set on the app (but the
    // entrypoint, which the image does not have).
    let unset: Vec<&String> = views["app"]
        .iter()
        .filter(|(field, v)| v.is_null() && field.as_str() != "/Config/Entrypoint")
        .map(|(field, _)| field)
        .collect();
    assert!(unset.is_empty(), "not set by the compose file: {unset:?}");
}

#[test]
fn network_modes_and_limits_give_the_container_compose_gives() {
    differential("compose-diff-modes", MODES, &[], &[], true);
}

#[test]
fn privileged_and_gpus_give_the_container_compose_gives() {
    differential("compose-diff-created", CREATED_ONLY, &[], &[], false);
}

#[test]
fn import_refuses_what_it_cannot_express_unless_allowed_and_never_prints_values() {
    let env = Env::new("compose-import-cli");
    let dir = env.path("project");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("compose.yaml"),
        "services:\n  app:\n    build: .\n    image: registry.lab/app:1\n    environment:\n      ADMIN_PASSWORD: very-secret-value\n",
    )
    .unwrap();
    let out = env.path("imported");
    let run = |extra: &[&str]| -> common::Run {
        env.command()
            .current_dir(&dir)
            .args(["import", "compose", "compose.yaml", "-p", "lab", "--out"])
            .arg(&out)
            .args(extra)
            .output()
            .expect("run")
            .into()
    };
    let refused = run(&[]);
    assert_eq!(refused.code, 1, "{refused}");
    assert!(
        refused.stderr.contains("build: ballast deploys images"),
        "{refused}"
    );
    assert!(refused.stderr.contains("nothing was written"), "{refused}");
    assert!(!out.exists());
    let partial = run(&["--allow-partial"]);
    assert_eq!(partial.code, 0, "{partial}");
    let manifest = std::fs::read_to_string(out.join("lab-app.yaml")).unwrap();
    assert!(manifest.contains("secretRef"));
    assert!(
        partial
            .stderr
            .contains("ballast secret set lab-app-admin-password"),
        "{partial}"
    );
    for text in [&partial.stderr, &partial.stdout, &manifest] {
        assert!(!text.contains("very-secret-value"));
    }
}

#[test]
fn editing_a_file_or_an_env_file_recreates_the_app_and_nothing_else_does() {
    let env = Env::new("compose-files");
    std::fs::create_dir_all(env.manifests.join("conf")).unwrap();
    std::fs::write(env.manifests.join("conf/app.ini"), "port = 80\n").unwrap();
    std::fs::write(env.manifests.join("app.env"), "GREETING=hello\n").unwrap();
    env.write(
        "web.yaml",
        &env.app(
            "web",
            "  envFile: [./app.env]\n  files:\n    - {source: ./conf/app.ini, target: /etc/app/app.ini, mode: \"0640\", uid: 65534, gid: 65534}\n",
        ),
    );
    env.apply();
    let container = env.name("web");
    let id = |env: &Env| {
        env.inspect("web").unwrap()["Id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first = id(&env);
    assert_eq!(
        exec(&env, &container, &["cat", "/etc/app/app.ini"]),
        "port = 80\n"
    );
    assert_eq!(
        exec(
            &env,
            &container,
            &["stat", "-c", "%a %u %g", "/etc/app/app.ini"]
        )
        .trim(),
        "640 65534 65534"
    );
    assert!(exec(&env, &container, &["env"]).contains("GREETING=hello"));

    let again = env.apply();
    assert!(
        again.stdout.contains("No changes") || !again.stdout.contains("replace"),
        "{again}"
    );
    assert_eq!(id(&env), first, "an unchanged re-apply keeps the container");

    std::fs::write(env.manifests.join("conf/app.ini"), "port = 81\n").unwrap();
    let diff = env.ballast(&["diff"]);
    assert_eq!(diff.code, 1, "{diff}");
    assert!(diff.stdout.contains("sha256"), "{diff}");
    assert!(
        !diff.stdout.contains("port = 81"),
        "the content never shows: {diff}"
    );
    env.apply();
    let second = id(&env);
    assert_ne!(second, first, "an edited file recreates the app");
    assert_eq!(
        exec(&env, &container, &["cat", "/etc/app/app.ini"]),
        "port = 81\n"
    );

    std::fs::write(env.manifests.join("app.env"), "GREETING=bonjour\n").unwrap();
    env.apply();
    assert_ne!(id(&env), second, "an edited env file recreates the app");
    assert!(exec(&env, &container, &["env"]).contains("GREETING=bonjour"));
}
