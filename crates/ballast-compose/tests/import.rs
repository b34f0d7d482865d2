//! `ballast import compose` from compose files written here: interpolation, `.env`,
//! `env_file`, `include`, `profiles`, `extends`, anchors and merge keys, `build:` refused
//! with its reason, credentials turned into secret references with no value shown. Each
//! generated manifest must validate as ballast reads it.

use std::collections::HashMap;
use std::path::Path;

use ballast_compose::{Import, ImportOptions, import};

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

fn run(dir: &Path, files: &[&str], env: &[(&str, &str)], profiles: &[&str]) -> Import {
    import(&ImportOptions {
        files: files.iter().map(|f| dir.join(f)).collect(),
        project_name: None,
        profiles: profiles.iter().map(|p| p.to_string()).collect(),
        server: None,
        out_dir: dir.join("out"),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn spec(import: &Import, service: &str) -> serde_json::Value {
    let app = import
        .apps
        .iter()
        .find(|a| a.service == service)
        .unwrap_or_else(|| panic!("{service} not imported"));
    let doc: serde_json::Value = serde_saphyr::from_str(&app.manifest).unwrap();
    doc["spec"].clone()
}

#[test]
fn interpolation_reads_the_environment_then_dot_env() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, ".env", "TAG=1.2\nPORT=8080\nNAME_FROM_ENV=fromdotenv\n");
    write(
        d,
        "compose.yaml",
        "name: lab\nservices:\n  web:\n    image: \"nginx:${TAG}\"\n    ports: [\"${PORT}:80\"]\n    environment:\n      A: ${UNSET:-fallback}\n      B: $${LITERAL}\n      C: ${NAME_FROM_ENV}\n      D: ${SHELL_ONLY}\n",
    );
    let imported = run(
        d,
        &["compose.yaml"],
        &[("SHELL_ONLY", "shell"), ("PORT", "9090")],
        &[],
    );
    assert_eq!(imported.project, "lab");
    let web = spec(&imported, "web");
    assert_eq!(web["image"], "nginx:1.2");
    assert_eq!(web["ports"][0], "9090:80", "the shell wins over .env");
    assert_eq!(web["env"]["A"], "fallback");
    assert_eq!(web["env"]["B"], "${LITERAL}");
    assert_eq!(web["env"]["C"], "fromdotenv");
    assert_eq!(web["env"]["D"], "shell");
    assert!(imported.is_lossless(), "{:?}", imported.apps[0].losses);

    write(
        d,
        "bad.yaml",
        "services:\n  web:\n    image: \"x:${REQUIRED:?set REQUIRED}\"\n",
    );
    let err = import(&ImportOptions {
        files: vec![d.join("bad.yaml")],
        out_dir: d.join("out"),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("services.web.image") && err.contains("set REQUIRED"),
        "{err}"
    );
}

#[test]
fn env_files_are_referenced_when_ballast_reads_them_alike() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "conf/app.env", "A=1\nB=${A}-x\n");
    write(d, "conf/shell.env", "HOME_FROM_SHELL=${SOMEVAR}\nLONELY\n");
    write(
        d,
        "compose.yaml",
        "services:\n  app:\n    image: busybox\n    env_file:\n      - conf/app.env\n      - path: conf/missing.env\n        required: false\n      - conf/shell.env\n",
    );
    let imported = run(
        d,
        &["compose.yaml"],
        &[("SOMEVAR", "v"), ("LONELY", "l")],
        &[],
    );
    let app = spec(&imported, "app");
    assert_eq!(app["envFile"][0], "../conf/app.env");
    assert_eq!(app["envFile"][1]["path"], "../conf/missing.env");
    assert_eq!(app["envFile"][1]["required"], false);
    // A file that takes values from the shell goes into env, as compose resolves it.
    assert_eq!(app["env"]["HOME_FROM_SHELL"], "v");
    assert_eq!(app["env"]["LONELY"], "l");
    assert!(!imported.apps[0].notes.is_empty());
}

#[test]
fn include_extends_profiles_and_anchors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "db/compose.yaml",
        "services:\n  db:\n    image: postgres:16\n    volumes: [data:/var/lib/postgresql/data]\n    env_file: db.env\nvolumes:\n  data: {}\n",
    );
    write(d, "db/db.env", "POSTGRES_DB=app\n");
    write(
        d,
        "base.yaml",
        "services:\n  base:\n    image: busybox\n    restart: unless-stopped\n    environment: {FROM_BASE: \"1\", OVERRIDDEN: base}\n    labels: [a=1]\n",
    );
    write(
        d,
        "compose.yaml",
        r#"name: home
include:
  - db/compose.yaml
x-common: &common
  restart: always
  logging:
    driver: json-file
    options: {max-size: 10m}
services:
  web:
    <<: *common
    image: nginx:1.27
    depends_on:
      db: {condition: service_healthy}
  worker:
    extends: {file: base.yaml, service: base}
    environment: {OVERRIDDEN: worker}
    labels: {b: "2"}
  tool:
    image: busybox
    profiles: [debug]
  local:
    extends: web
    container_name: Local_Web
"#,
    );
    let imported = run(d, &["compose.yaml"], &[], &[]);
    assert_eq!(imported.skipped.len(), 1);
    assert_eq!(imported.skipped[0].0, "tool");
    let web = spec(&imported, "web");
    assert_eq!(web["restart"], "always", "merged from the anchor");
    assert_eq!(web["logging"]["options"]["max-size"], "10m");
    assert_eq!(web["dependsOn"][0], "home-db");
    assert_eq!(web["networks"][0], "home_default");
    assert_eq!(web["aliases"][0], "web");
    let db = spec(&imported, "db");
    assert_eq!(db["volumes"][0], "home_data:/var/lib/postgresql/data");
    assert_eq!(db["envFile"][0], "../db/db.env");
    let worker = spec(&imported, "worker");
    assert_eq!(worker["restart"], "unless-stopped");
    assert_eq!(worker["env"]["FROM_BASE"], "1");
    assert_eq!(worker["env"]["OVERRIDDEN"], "worker");
    assert_eq!(worker["labels"]["a"], "1");
    assert_eq!(worker["labels"]["b"], "2");
    let local = imported.apps.iter().find(|a| a.service == "local").unwrap();
    assert_eq!(local.name, "local-web");
    let with_debug = run(d, &["compose.yaml"], &[], &["debug"]);
    assert!(with_debug.apps.iter().any(|a| a.service == "tool"));
    let with_env = run(d, &["compose.yaml"], &[("COMPOSE_PROFILES", "debug")], &[]);
    assert!(with_env.apps.iter().any(|a| a.service == "tool"));
}

#[test]
fn build_is_refused_with_its_reason_and_credentials_become_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "compose.yaml",
        "services:\n  app:\n    build: .\n    image: registry.lab/app:1\n    environment:\n      DB_PASSWORD: hunter2\n      API_TOKEN: t0k3n\n      PASSWORD_FILE: /run/secrets/pw\n      PLAIN: visible\n  only-build:\n    build: ./src\n",
    );
    let imported = run(d, &["compose.yaml"], &[], &[]);
    assert!(!imported.is_lossless());
    let app = imported.apps.iter().find(|a| a.service == "app").unwrap();
    assert_eq!(app.losses[0].field, "build");
    assert!(app.losses[0].reason.contains("build this one in CI"));
    assert!(!app.manifest.contains("hunter2") && !app.manifest.contains("t0k3n"));
    assert!(app.manifest.contains("build: ballast deploys images"));
    let s = spec(&imported, "app");
    let project = &imported.project;
    assert_eq!(
        s["env"]["DB_PASSWORD"]["secretRef"]["name"],
        format!("{project}-app-db-password")
    );
    assert_eq!(s["env"]["PASSWORD_FILE"], "/run/secrets/pw");
    assert_eq!(s["env"]["PLAIN"], "visible");
    let commands = imported.secret_commands();
    assert_eq!(commands.len(), 2);
    assert!(commands[0].starts_with(&format!("ballast secret set {project}-app-db-password")));
    assert!(commands.iter().all(|c| !c.contains("hunter2")));
    assert_eq!(imported.refused.len(), 1);
    assert_eq!(imported.refused[0].0, "only-build");
}

#[test]
fn apps_for_a_server_name_it_and_say_where_bind_mounts_are() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "compose.yaml",
        "services:\n  web:\n    image: nginx\n    volumes: [\"/srv/www:/usr/share/nginx/html:ro\"]\n",
    );
    let imported = import(&ImportOptions {
        files: vec![d.join("compose.yaml")],
        server: Some("nas01".into()),
        out_dir: d.join("out"),
        ..Default::default()
    })
    .unwrap();
    let web = spec(&imported, "web");
    assert_eq!(web["server"], "nas01");
    // The Server is in the user's manifests, not in the import: no loss for it.
    assert!(imported.is_lossless(), "{:?}", imported.apps[0].losses);
    assert!(imported.apps[0].notes[0].contains("/srv/www is a path on server nas01"));
}

#[test]
fn every_field_in_both_syntaxes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "conf/app.ini", "[app]\n");
    write(
        d,
        "compose.yaml",
        r#"services:
  vpn:
    image: busybox
    cap_add: NET_ADMIN
    read_only: true
    devices: ["/dev/net/tun:/dev/net/tun"]
    sysctls: ["net.ipv4.ip_forward=1"]
  app:
    image: busybox
    hostname: app
    domainname: lab.example
    expose: [80, "53/udp"]
    ports:
      - "127.0.0.1:8000-8001:8000-8001"
      - target: 443
        published: "8443"
        protocol: tcp
    volumes:
      - type: bind
        source: ./conf
        target: /conf
        read_only: true
      - type: tmpfs
        target: /cache
        tmpfs: {size: 1048576}
    cap_drop: [ALL]
    security_opt: ["no-new-privileges:true"]
    tmpfs: /tmp
    init: true
    dns: 1.1.1.1
    dns_search: [lab.example]
    extra_hosts: {nas: 10.0.0.5}
    ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 512}
    pids_limit: 100
    sysctls: {net.core.somaxconn: 1024}
    logging: {driver: local}
    stop_signal: SIGINT
    stop_grace_period: 1m
    privileged: false
    shm_size: 128m
    mem_limit: 512m
    memswap_limit: 1g
    cpus: 0.5
    stdin_open: true
    tty: true
    configs:
      - source: appconf
        target: /etc/app.ini
        mode: 0440
    secrets: [token]
    healthcheck:
      test: ["CMD-SHELL", "true"]
      interval: 10s
      retries: 3
    deploy:
      resources:
        reservations:
          devices: [{capabilities: [gpu], count: all}]
  sidecar:
    image: busybox
    network_mode: "service:vpn"
    links: ["app:application"]
configs:
  appconf: {file: ./conf/app.ini}
secrets:
  token: {file: ./conf/app.ini}
"#,
    );
    let imported = run(d, &["compose.yaml"], &[], &[]);
    for app in &imported.apps {
        assert!(
            app.losses.is_empty(),
            "{}: {:?}\n{}",
            app.service,
            app.losses,
            app.manifest
        );
    }
    let app = spec(&imported, "app");
    assert_eq!(app["expose"], serde_json::json!(["80", "53/udp"]));
    assert_eq!(
        app["ports"],
        serde_json::json!(["127.0.0.1:8000:8000", "127.0.0.1:8001:8001", "8443:443"])
    );
    assert_eq!(
        app["volumes"][0],
        format!("{}:/conf:ro", d.join("conf").display())
    );
    assert_eq!(
        app["tmpfs"],
        serde_json::json!(["/tmp", "/cache:size=1048576"])
    );
    assert_eq!(app["extraHosts"][0], "nas=10.0.0.5");
    assert_eq!(app["ulimits"]["nproc"], 512);
    assert_eq!(app["resources"]["memorySwap"], "1g");
    assert_eq!(app["files"][0]["mode"], "0440");
    assert_eq!(app["files"][0]["source"], "../conf/app.ini");
    assert_eq!(app["files"][1]["target"], "/run/secrets/token");
    assert_eq!(app["healthcheck"]["test"], "true");
    assert_eq!(app["gpus"], "all");
    assert_eq!(app["aliases"], serde_json::json!(["app", "application"]));
    let sidecar = spec(&imported, "sidecar");
    let project = &imported.project;
    assert_eq!(sidecar["networkMode"], format!("app:{project}-vpn"));
    assert!(sidecar["dependsOn"].as_array().unwrap().len() == 2);
    let vpn = spec(&imported, "vpn");
    assert_eq!(vpn["capAdd"][0], "NET_ADMIN");
    assert_eq!(vpn["readOnly"], true);
    assert_eq!(vpn["sysctls"]["net.ipv4.ip_forward"], "1");
}
