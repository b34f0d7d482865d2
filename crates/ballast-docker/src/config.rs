//! The pure part of container creation: an [`AppSpec`] (with its environment resolved) turned
//! into the engine's create body. No I/O here, so every field mapping is tested from a table.

use std::collections::HashMap;
use std::fmt;

use ballast_model::AppSpec;
use ballast_model::app::fields::{
    DeviceMapping as DeviceSpec, GpuRequest, NetworkMode, capability_key, expose_key,
    parse_extra_host, parse_memory_swap, parse_size, parse_tmpfs,
};
use ballast_model::app::{
    PortMapping, RestartPolicy, VolumeMount, VolumeSource, parse_duration, parse_memory,
    parse_stop_grace_period,
};
use ballast_plan::app::labels;
use bollard::models::{
    ContainerCreateBody, DeviceMapping, DeviceRequest, EndpointSettings, HealthConfig, HostConfig,
    HostConfigLogConfig, NetworkingConfig, PortBinding, ResourcesUlimits,
    RestartPolicy as DockerRestartPolicy, RestartPolicyNameEnum,
};

/// An App ready to be applied: its spec, the hash the plan compared, and its environment with
/// secret values already resolved by the caller.
///
/// `Debug` prints environment variable names only, never their values.
#[derive(Clone)]
pub struct ResolvedApp {
    /// The App's name; also the container's name.
    pub name: String,
    pub spec: AppSpec,
    /// Spec hash including the versions of the secrets it uses (label `ballast.spec-hash`).
    pub spec_hash: String,
    /// `(KEY, value)` in order, secrets resolved. Values are never logged.
    pub env: Vec<(String, String)>,
}

impl ResolvedApp {
    pub fn new(
        name: impl Into<String>,
        spec: AppSpec,
        spec_hash: impl Into<String>,
        env: Vec<(String, String)>,
    ) -> ResolvedApp {
        ResolvedApp {
            name: name.into(),
            spec,
            spec_hash: spec_hash.into(),
            env,
        }
    }

    /// The image reference the spec asks for.
    pub fn image(&self) -> &str {
        &self.spec.image.value
    }

    /// The networks the spec names, in order.
    pub fn networks(&self) -> impl Iterator<Item = &str> {
        self.spec.networks.iter().map(|n| n.value.as_str())
    }
}

impl fmt::Debug for ResolvedApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env_names: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ResolvedApp")
            .field("name", &self.name)
            .field("spec", &self.spec)
            .field("spec_hash", &self.spec_hash)
            .field("env", &format_args!("{env_names:?} (values redacted)"))
            .finish()
    }
}

/// The labels ballast puts on an app's container: the spec's own labels, then ballast's (which
/// win on a clash; validation already refuses `ballast.` keys in manifests).
pub fn container_labels(
    app: &ResolvedApp,
    instance_id: &str,
) -> Result<HashMap<String, String>, String> {
    let mut out: HashMap<String, String> = app
        .spec
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let spec_json = serde_json::to_string(&app.spec)
        .map_err(|e| format!("cannot serialize the spec as JSON: {e}"))?;
    out.insert(labels::MANAGED.to_string(), "true".to_string());
    out.insert(labels::INSTANCE.to_string(), instance_id.to_string());
    out.insert(labels::APP.to_string(), app.name.clone());
    out.insert(labels::SPEC_HASH.to_string(), app.spec_hash.clone());
    out.insert(labels::SPEC.to_string(), spec_json);
    Ok(out)
}

fn duration_nanos(text: &str) -> Result<i64, String> {
    let d = parse_duration(text)?;
    i64::try_from(d.as_nanos()).map_err(|_| format!("duration `{text}` is too long"))
}

/// The create body for `app`'s container. Only the first network is attached here (as the
/// network mode); the others are connected after create, which every API version accepts.
pub fn create_body(app: &ResolvedApp, instance_id: &str) -> Result<ContainerCreateBody, String> {
    let spec = &app.spec;

    let cmd = spec.command.as_ref().map(|c| c.to_argv()).transpose()?;
    let entrypoint = spec.entrypoint.as_ref().map(|c| c.to_argv()).transpose()?;
    let env: Vec<String> = merged_env(app)?
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();

    let mut exposed: Vec<String> = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for port in &spec.ports {
        let p = PortMapping::parse(&port.value)?;
        let key = format!("{}/{}", p.container_port, p.protocol);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some(p.host_ip.map(|ip| ip.to_string()).unwrap_or_default()),
                host_port: Some(p.host_port.to_string()),
            });
    }

    for entry in &spec.expose {
        let key = expose_key(&entry.value)?;
        if !exposed.contains(&key) {
            exposed.push(key);
        }
    }

    let mut binds = Vec::new();
    for volume in &spec.volumes {
        let v = VolumeMount::parse(&volume.value)?;
        let source = match &v.source {
            VolumeSource::Named(name) => name,
            VolumeSource::Bind(path) => path,
        };
        let mode = if v.read_only { ":ro" } else { "" };
        binds.push(format!("{source}:{}{mode}", v.target));
    }

    let restart_policy = match &spec.restart {
        None => None,
        Some(text) => Some(match RestartPolicy::parse(&text.value)? {
            RestartPolicy::No => DockerRestartPolicy {
                name: Some(RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            },
            RestartPolicy::Always => DockerRestartPolicy {
                name: Some(RestartPolicyNameEnum::ALWAYS),
                maximum_retry_count: None,
            },
            RestartPolicy::UnlessStopped => DockerRestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            },
            RestartPolicy::OnFailure { max_retries } => DockerRestartPolicy {
                name: Some(RestartPolicyNameEnum::ON_FAILURE),
                maximum_retry_count: max_retries.map(i64::from),
            },
        }),
    };

    let healthcheck = match &spec.healthcheck {
        None => None,
        Some(h) => Some(HealthConfig {
            test: Some(h.docker_test()),
            interval: h
                .interval
                .as_ref()
                .map(|d| duration_nanos(&d.value))
                .transpose()?,
            timeout: h
                .timeout
                .as_ref()
                .map(|d| duration_nanos(&d.value))
                .transpose()?,
            retries: h.retries.map(i64::from),
            start_period: h
                .start_period
                .as_ref()
                .map(|d| duration_nanos(&d.value))
                .transpose()?,
            start_interval: None,
        }),
    };

    let (memory, nano_cpus, memory_swap) = match &spec.resources {
        None => (None, None, None),
        Some(r) => {
            let memory = match &r.memory {
                Some(m) => Some(
                    i64::try_from(parse_memory(&m.value)?)
                        .map_err(|_| format!("memory size `{}` is too large", m.value))?,
                ),
                None => None,
            };
            let nano_cpus = match &r.cpus {
                Some(c) if !(c.value.is_finite() && c.value > 0.0) => {
                    return Err(format!("cpus `{}` must be a positive number", c.value));
                }
                Some(c) => Some((c.value * 1e9).round() as i64),
                None => None,
            };
            let memory_swap = r
                .memory_swap
                .as_ref()
                .map(|s| parse_memory_swap(&s.value))
                .transpose()?;
            (memory, nano_cpus, memory_swap)
        }
    };

    let (network_mode, networking_config) = match &spec.network_mode {
        Some(mode) => (Some(NetworkMode::parse(&mode.value)?.docker_value()), None),
        None => {
            let primary = spec.networks.first().map(|n| n.value.clone());
            let config = primary.as_ref().map(|net| NetworkingConfig {
                endpoints_config: Some(HashMap::from([(net.clone(), endpoint(app))])),
            });
            (primary, config)
        }
    };

    let host_config = HostConfig {
        binds: (!binds.is_empty()).then_some(binds),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        network_mode,
        restart_policy,
        memory,
        nano_cpus,
        memory_swap,
        init: spec.init,
        ..compose_host_config(spec)?
    };
    let stop_timeout = spec
        .stop_grace_period
        .as_ref()
        .map(|p| parse_stop_grace_period(&p.value))
        .transpose()?;

    Ok(ContainerCreateBody {
        image: Some(spec.image.value.clone()),
        cmd,
        entrypoint,
        env: (!env.is_empty()).then_some(env),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        labels: Some(container_labels(app, instance_id)?),
        healthcheck,
        user: spec.user.clone(),
        working_dir: spec.working_dir.clone(),
        stop_signal: spec.stop_signal.as_ref().map(|s| s.value.clone()),
        stop_timeout,
        hostname: spec.hostname.as_ref().map(|h| h.value.clone()),
        domainname: spec.domainname.as_ref().map(|d| d.value.clone()),
        open_stdin: spec.stdin_open.then_some(true),
        tty: spec.tty.then_some(true),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    })
}

/// The environment the container gets: the `envFile` variables in order (a later file wins),
/// then `env` (resolved secrets included), which wins over them as compose's `environment`
/// wins over `env_file`.
pub fn merged_env(app: &ResolvedApp) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut set = |key: &str, value: &str| match out.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value.to_string(),
        None => out.push((key.to_string(), value.to_string())),
    };
    for file in &app.spec.env_file {
        match (&file.vars, &file.sha256) {
            (Some(vars), _) => {
                for (k, v) in vars.0.iter() {
                    set(k, v);
                }
            }
            // An optional file that was missing when the manifests were loaded.
            (None, None) if !file.required => {}
            _ => {
                return Err(format!(
                    "the env file {} was not read with the manifests; load them from their directory",
                    file.path
                ));
            }
        }
    }
    for (k, v) in &app.env {
        set(k, v);
    }
    Ok(out)
}

/// The endpoint settings of each of the app's networks: its aliases.
pub fn endpoint(app: &ResolvedApp) -> EndpointSettings {
    let aliases: Vec<String> = app.spec.aliases.iter().map(|a| a.value.clone()).collect();
    EndpointSettings {
        aliases: (!aliases.is_empty()).then_some(aliases),
        ..Default::default()
    }
}

fn strings(items: &[ballast_model::Spanned<String>]) -> Option<Vec<String>> {
    (!items.is_empty()).then(|| items.iter().map(|i| i.value.clone()).collect())
}

fn capabilities(items: &[ballast_model::Spanned<String>]) -> Option<Vec<String>> {
    (!items.is_empty()).then(|| items.iter().map(|c| capability_key(&c.value)).collect())
}

/// The host settings of the fields with docker compose's meaning, each as compose sends it.
fn compose_host_config(spec: &AppSpec) -> Result<HostConfig, String> {
    let mut tmpfs = HashMap::new();
    for entry in &spec.tmpfs {
        let (path, options) = parse_tmpfs(&entry.value)?;
        tmpfs.insert(path, options);
    }
    let extra_hosts = spec
        .extra_hosts
        .iter()
        .map(|h| parse_extra_host(&h.value))
        .collect::<Result<Vec<_>, _>>()?;
    let ulimits: Vec<ResourcesUlimits> = spec
        .ulimits
        .iter()
        .map(|(name, limit)| {
            let (soft, hard) = limit.limits();
            ResourcesUlimits {
                name: Some(name.clone()),
                soft: Some(soft),
                hard: Some(hard),
            }
        })
        .collect();
    let devices = spec
        .devices
        .iter()
        .map(|d| {
            DeviceSpec::parse(&d.value).map(|d| DeviceMapping {
                path_on_host: Some(d.host),
                path_in_container: Some(d.container),
                cgroup_permissions: Some(d.permissions),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let device_requests = match &spec.gpus {
        Some(gpus) => {
            let request = GpuRequest::parse(&gpus.value)?;
            Some(vec![DeviceRequest {
                driver: request.driver,
                count: request.count,
                device_ids: (!request.device_ids.is_empty()).then_some(request.device_ids),
                capabilities: Some(vec![request.capabilities]),
                options: None,
            }])
        }
        None => None,
    };
    let log_config = spec.logging.as_ref().map(|l| HostConfigLogConfig {
        typ: l.driver.as_ref().map(|d| d.value.clone()),
        config: (!l.options.is_empty()).then(|| {
            l.options
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }),
    });
    let shm_size = match &spec.shm_size {
        Some(size) => Some(
            i64::try_from(parse_size(&size.value)?)
                .map_err(|_| format!("shm size `{}` is too large", size.value))?,
        ),
        None => None,
    };
    Ok(HostConfig {
        cap_add: capabilities(&spec.cap_add),
        cap_drop: capabilities(&spec.cap_drop),
        security_opt: strings(&spec.security_opt),
        readonly_rootfs: spec.read_only.then_some(true),
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        dns: strings(&spec.dns),
        dns_search: strings(&spec.dns_search),
        extra_hosts: (!extra_hosts.is_empty()).then_some(extra_hosts),
        ulimits: (!ulimits.is_empty()).then_some(ulimits),
        pids_limit: spec.pids_limit.as_ref().map(|p| p.value),
        sysctls: (!spec.sysctls.is_empty()).then(|| {
            spec.sysctls
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }),
        log_config,
        devices: (!devices.is_empty()).then_some(devices),
        device_requests,
        privileged: spec.privileged.then_some(true),
        shm_size,
        ..Default::default()
    })
}

/// Splits an image reference into the `fromImage` and `tag` a pull needs (an empty tag would pull
/// every tag of the repository). A digest goes in `tag`, as the docker CLI does.
pub fn split_reference(image: &str) -> (&str, &str) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo, digest);
    }
    let last_slash = image.rfind('/').map(|i| i + 1).unwrap_or(0);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], &image[last_slash + i + 1..]),
        None => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(yaml: &str) -> ResolvedApp {
        let spec: AppSpec = serde_saphyr::from_str(yaml).expect("spec parses");
        ResolvedApp::new("web", spec, "h1", vec![("TOKEN".into(), "s3cret".into())])
    }

    #[test]
    fn every_spec_field_lands_in_the_create_body() {
        let a = app(r#"
image: busybox:1
command: "sleep 60"
entrypoint: ["/bin/sh", "-c"]
ports: ["8080:80", "127.0.0.1:5353:53/udp", "[::1]:8081:80"]
volumes: ["data:/data", "/srv/www:/www:ro"]
networks: [front, back]
restart: on-failure:3
labels: {team: ops}
healthcheck: {test: "true", interval: 1m30s, timeout: 500ms, retries: 2, startPeriod: 1s}
user: "1000:1000"
workingDir: /data
resources: {memory: 64m, cpus: 0.5}
init: true
stopSignal: SIGINT
stopGracePeriod: 1m30s
"#);
        let body = create_body(&a, "inst-1").unwrap();
        assert_eq!(body.image.as_deref(), Some("busybox:1"));
        assert_eq!(body.cmd, Some(vec!["sleep".to_string(), "60".to_string()]));
        assert_eq!(
            body.entrypoint,
            Some(vec!["/bin/sh".to_string(), "-c".to_string()])
        );
        assert_eq!(body.env, Some(vec!["TOKEN=s3cret".to_string()]));
        assert_eq!(
            body.exposed_ports,
            Some(vec!["80/tcp".to_string(), "53/udp".to_string()])
        );
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        assert_eq!(body.working_dir.as_deref(), Some("/data"));
        assert_eq!(body.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(body.stop_timeout, Some(90));
        let hc = body.healthcheck.unwrap();
        assert_eq!(
            hc.test,
            Some(vec!["CMD-SHELL".to_string(), "true".to_string()])
        );
        assert_eq!(hc.interval, Some(90_000_000_000));
        assert_eq!(hc.timeout, Some(500_000_000));
        assert_eq!(hc.retries, Some(2));
        assert_eq!(hc.start_period, Some(1_000_000_000));
        let labels = body.labels.unwrap();
        assert_eq!(labels["team"], "ops");
        assert_eq!(labels["ballast.managed"], "true");
        assert_eq!(labels["ballast.instance"], "inst-1");
        assert_eq!(labels["ballast.app"], "web");
        assert_eq!(labels["ballast.spec-hash"], "h1");
        let spec: serde_json::Value = serde_json::from_str(&labels["ballast.spec"]).unwrap();
        assert_eq!(spec["image"], "busybox:1");
        assert!(!labels["ballast.spec"].contains("s3cret"));
        let host = body.host_config.unwrap();
        assert_eq!(
            host.binds,
            Some(vec![
                "data:/data".to_string(),
                "/srv/www:/www:ro".to_string()
            ])
        );
        let ports = host.port_bindings.unwrap();
        let http = ports["80/tcp"].as_ref().unwrap();
        assert_eq!(http.len(), 2);
        assert_eq!(http[0].host_ip.as_deref(), Some(""));
        assert_eq!(http[0].host_port.as_deref(), Some("8080"));
        assert_eq!(http[1].host_ip.as_deref(), Some("::1"));
        assert_eq!(
            ports["53/udp"].as_ref().unwrap()[0].host_ip.as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(host.network_mode.as_deref(), Some("front"));
        let restart = host.restart_policy.unwrap();
        assert_eq!(restart.name, Some(RestartPolicyNameEnum::ON_FAILURE));
        assert_eq!(restart.maximum_retry_count, Some(3));
        assert_eq!(host.memory, Some(64 << 20));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.init, Some(true));
        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(endpoints.keys().collect::<Vec<_>>(), vec!["front"]);
    }

    #[test]
    fn compose_fields_land_in_the_create_body_as_compose_sends_them() {
        use ballast_model::app::sources::EnvVars;
        use std::sync::Arc;
        let mut a = app(r#"
image: busybox:1
env: {TOKEN: from-env}
envFile: [a.env, {path: b.env, required: false}]
hostname: web
domainname: lab.example
expose: ["9000", "53/udp", "7000-7001"]
ports: ["8080:80"]
capAdd: [NET_ADMIN]
capDrop: [ALL]
securityOpt: ["no-new-privileges:true"]
readOnly: true
networks: [front, back]
aliases: [www]
tmpfs: [/run, "/tmp:size=64m"]
dns: [1.1.1.1]
dnsSearch: [lab.example]
extraHosts: ["nas=10.0.0.5"]
ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 64}
pidsLimit: 100
sysctls: {net.core.somaxconn: 1024}
logging: {driver: json-file, options: {max-size: 1m}}
devices: [/dev/null]
gpus: all
privileged: true
shmSize: 128m
stdinOpen: true
tty: true
resources: {memory: 64m, memorySwap: 128m}
"#);
        a.spec.env_file[0].vars = Some(EnvVars(Arc::new(vec![
            ("FROM_FILE".into(), "1".into()),
            ("TOKEN".into(), "from-file".into()),
        ])));
        a.spec.env_file[0].sha256 = Some("ab".into());
        let body = create_body(&a, "i").unwrap();
        // env wins over the file, as compose's environment wins over env_file.
        assert_eq!(
            body.env,
            Some(vec!["FROM_FILE=1".to_string(), "TOKEN=s3cret".to_string()])
        );
        assert_eq!(body.hostname.as_deref(), Some("web"));
        assert_eq!(body.domainname.as_deref(), Some("lab.example"));
        assert_eq!(
            body.exposed_ports,
            Some(
                ["80/tcp", "9000/tcp", "53/udp", "7000-7001/tcp"]
                    .map(String::from)
                    .to_vec()
            )
        );
        assert_eq!((body.open_stdin, body.tty), (Some(true), Some(true)));
        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(endpoints["front"].aliases, Some(vec!["www".to_string()]));
        let host = body.host_config.unwrap();
        assert_eq!(host.cap_add, Some(vec!["CAP_NET_ADMIN".to_string()]));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges:true".to_string()])
        );
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.network_mode.as_deref(), Some("front"));
        let tmpfs = host.tmpfs.unwrap();
        assert_eq!(
            (tmpfs["/run"].as_str(), tmpfs["/tmp"].as_str()),
            ("", "size=64m")
        );
        assert_eq!(host.dns, Some(vec!["1.1.1.1".to_string()]));
        assert_eq!(host.dns_search, Some(vec!["lab.example".to_string()]));
        assert_eq!(host.extra_hosts, Some(vec!["nas:10.0.0.5".to_string()]));
        let ulimits = host.ulimits.unwrap();
        assert_eq!(
            (ulimits[0].name.as_deref(), ulimits[0].soft, ulimits[0].hard),
            (Some("nofile"), Some(1024), Some(2048))
        );
        assert_eq!((ulimits[1].soft, ulimits[1].hard), (Some(64), Some(64)));
        assert_eq!(host.pids_limit, Some(100));
        assert_eq!(host.sysctls.unwrap()["net.core.somaxconn"], "1024");
        let log = host.log_config.unwrap();
        assert_eq!(log.typ.as_deref(), Some("json-file"));
        assert_eq!(log.config.unwrap()["max-size"], "1m");
        let device = &host.devices.unwrap()[0];
        assert_eq!(
            (
                device.path_on_host.as_deref(),
                device.path_in_container.as_deref(),
                device.cgroup_permissions.as_deref()
            ),
            (Some("/dev/null"), Some("/dev/null"), Some("rwm"))
        );
        let gpus = &host.device_requests.unwrap()[0];
        assert_eq!(gpus.count, Some(-1));
        assert_eq!(gpus.capabilities, Some(vec![vec!["gpu".to_string()]]));
        assert_eq!(host.privileged, Some(true));
        assert_eq!(host.shm_size, Some(128 << 20));
        assert_eq!(
            (host.memory, host.memory_swap),
            (Some(64 << 20), Some(128 << 20))
        );

        // An env file that was not read (a spec not loaded from its directory) is an error.
        a.spec.env_file[0].vars = None;
        assert!(create_body(&a, "i").unwrap_err().contains("was not read"));
    }

    #[test]
    fn network_mode_replaces_networks() {
        let a = app("image: busybox:1\nnetworkMode: app:vpn\n");
        let body = create_body(&a, "i").unwrap();
        assert_eq!(
            body.host_config.unwrap().network_mode.as_deref(),
            Some("container:vpn")
        );
        assert_eq!(body.networking_config, None);
    }

    #[test]
    fn a_minimal_spec_sets_nothing_else() {
        let mut a = app("image: busybox:1");
        a.env.clear();
        let body = create_body(&a, "i").unwrap();
        assert_eq!(body.cmd, None);
        assert_eq!(body.env, None);
        assert_eq!(body.exposed_ports, None);
        assert_eq!(body.healthcheck, None);
        assert_eq!(body.networking_config, None);
        let host = body.host_config.unwrap();
        assert_eq!(
            (host.binds, host.port_bindings, host.network_mode),
            (None, None, None)
        );
        assert_eq!(host.restart_policy, None);
    }

    #[test]
    fn debug_never_shows_env_values() {
        let a = app("image: busybox:1");
        let shown = format!("{a:?}");
        assert!(shown.contains("TOKEN"));
        assert!(!shown.contains("s3cret"));
    }

    #[test]
    fn references_split_into_repository_and_tag() {
        let cases = [
            ("busybox", ("busybox", "latest")),
            ("busybox:1.36", ("busybox", "1.36")),
            ("grafana/grafana:11.2.0", ("grafana/grafana", "11.2.0")),
            (
                "registry.local:5000/team/app",
                ("registry.local:5000/team/app", "latest"),
            ),
            (
                "registry.local:5000/team/app:v2",
                ("registry.local:5000/team/app", "v2"),
            ),
            ("alpine@sha256:abc", ("alpine", "sha256:abc")),
        ];
        for (input, expected) in cases {
            assert_eq!(split_reference(input), expected, "{input}");
        }
    }
}
