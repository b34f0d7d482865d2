#!/usr/bin/env python3
"""Generates the corpus of homelab-shaped compose files under this directory.

The services are the ones homelab users run every day (media servers, *arr, download
clients, VPNs, proxies, password managers, monitoring, home automation, photo and document
stacks), written the way their own documentation writes them: linuxserver.io-style PUID/PGID
environments, /dev/dri for transcoding, NET_ADMIN and /dev/net/tun for VPNs, host networking
for discovery, healthchecks on databases, logging limits, anchors for shared settings. Each
file varies the syntax deterministically (environment as a list or a map, ports and volumes in
short or long form, depends_on as a list or with conditions, `.env` interpolation, env files),
so every form compose accepts is exercised. Run it to regenerate: python3 generate.py (needs
PyYAML). The expected counts live in tests/corpus.rs and bench/README.md.
"""
import os
import random

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
LSIO = {"PUID": "1000", "PGID": "1000", "TZ": "Europe/Berlin"}


def lsio(image, port, extra=None, config="/config", volumes=(), **kw):
    svc = {
        "image": f"lscr.io/linuxserver/{image}:latest",
        "environment": dict(LSIO),
        "volumes": [f"./{image}/config:{config}"] + list(volumes),
        "ports": [f"{port}:{port}"],
        "restart": "unless-stopped",
    }
    svc.update(extra or {})
    svc.update(kw)
    return svc


# name -> services (one file each); a few files hold a whole stack.
STACKS = {
    "sonarr": {"sonarr": lsio("sonarr", 8989, volumes=["/srv/media/tv:/tv", "/srv/downloads:/downloads"])},
    "radarr": {"radarr": lsio("radarr", 7878, volumes=["/srv/media/movies:/movies", "/srv/downloads:/downloads"])},
    "lidarr": {"lidarr": lsio("lidarr", 8686, volumes=["/srv/media/music:/music"])},
    "readarr": {"readarr": lsio("readarr", 8787, volumes=["/srv/media/books:/books"])},
    "prowlarr": {"prowlarr": lsio("prowlarr", 9696)},
    "bazarr": {"bazarr": lsio("bazarr", 6767, volumes=["/srv/media:/media"])},
    "sabnzbd": {"sabnzbd": lsio("sabnzbd", 8080, volumes=["/srv/downloads:/downloads"])},
    "nzbget": {"nzbget": lsio("nzbget", 6789, volumes=["/srv/downloads:/downloads"])},
    "qbittorrent": {"qbittorrent": lsio("qbittorrent", 8080, extra={"ports": ["8080:8080", "6881:6881", "6881:6881/udp"], "environment": dict(LSIO, WEBUI_PORT="8080")})},
    "transmission": {"transmission": lsio("transmission", 9091, extra={"ports": ["9091:9091", "51413:51413", "51413:51413/udp"]})},
    "deluge": {"deluge": lsio("deluge", 8112)},
    "jellyfin": {"jellyfin": {"image": "jellyfin/jellyfin:10.9", "user": "1000:1000", "network_mode": "host", "volumes": ["jellyfin-config:/config", "jellyfin-cache:/cache", "/srv/media:/media:ro"], "devices": ["/dev/dri:/dev/dri"], "group_add": ["109"], "restart": "unless-stopped"}, "#volumes": {"jellyfin-config": None, "jellyfin-cache": None}},
    "jellyfin-plain": {"jellyfin": {"image": "jellyfin/jellyfin:10.9", "ports": ["8096:8096"], "volumes": ["./config:/config", "./cache:/cache", "/srv/media:/media:ro"], "devices": ["/dev/dri/renderD128:/dev/dri/renderD128"], "restart": "unless-stopped", "extra_hosts": ["host.docker.internal:host-gateway"]}},
    "plex": {"plex": {"image": "plexinc/pms-docker:latest", "network_mode": "host", "environment": {"TZ": "Europe/Berlin", "PLEX_CLAIM": "claim-xxxx", "ADVERTISE_IP": "http://10.0.0.5:32400/"}, "hostname": "plex", "volumes": ["./config:/config", "./transcode:/transcode", "/srv/media:/data"], "devices": ["/dev/dri:/dev/dri"], "restart": "unless-stopped"}},
    "emby": {"emby": {"image": "emby/embyserver:latest", "environment": {"UID": "1000", "GID": "1000"}, "ports": ["8096:8096", "8920:8920"], "volumes": ["./config:/config", "/srv/media:/mnt/media"], "devices": ["/dev/dri:/dev/dri"], "restart": "on-failure"}},
    "jellyseerr": {"jellyseerr": {"image": "fallenbagel/jellyseerr:latest", "environment": {"LOG_LEVEL": "debug", "TZ": "Europe/Berlin"}, "ports": ["5055:5055"], "volumes": ["./config:/app/config"], "restart": "unless-stopped"}},
    "overseerr": {"overseerr": lsio("overseerr", 5055)},
    "tautulli": {"tautulli": lsio("tautulli", 8181)},
    "audiobookshelf": {"audiobookshelf": {"image": "ghcr.io/advplyr/audiobookshelf:latest", "ports": ["13378:80"], "volumes": ["/srv/audiobooks:/audiobooks", "/srv/podcasts:/podcasts", "./config:/config", "./metadata:/metadata"], "environment": ["TZ=Europe/Berlin"], "restart": "unless-stopped"}},
    "navidrome": {"navidrome": {"image": "deluan/navidrome:latest", "user": "1000:1000", "ports": ["4533:4533"], "restart": "unless-stopped", "environment": {"ND_SCANSCHEDULE": "1h", "ND_LOGLEVEL": "info", "ND_SESSIONTIMEOUT": "24h"}, "volumes": ["./data:/data", "/srv/music:/music:ro"]}},
    "calibre-web": {"calibre-web": lsio("calibre-web", 8083, extra={"environment": dict(LSIO, DOCKER_MODS="linuxserver/mods:universal-calibre")})},
    "kavita": {"kavita": {"image": "jvmilazz0/kavita:latest", "volumes": ["/srv/manga:/manga", "./config:/kavita/config"], "environment": {"TZ": "Europe/Berlin"}, "ports": ["5000:5000"], "restart": "unless-stopped"}},
    "komga": {"komga": {"image": "gotson/komga", "volumes": ["./config:/config", "/srv/comics:/data"], "ports": ["25600:25600"], "user": "1000:1000", "environment": ["TZ=Europe/Berlin"], "restart": "unless-stopped"}},
    "gluetun-qbit": {
        "gluetun": {"image": "qmcgaw/gluetun", "cap_add": ["NET_ADMIN"], "devices": ["/dev/net/tun:/dev/net/tun"], "ports": ["8888:8888/tcp", "8388:8388/tcp", "8388:8388/udp", "8080:8080"], "volumes": ["./gluetun:/gluetun"], "environment": {"VPN_SERVICE_PROVIDER": "mullvad", "VPN_TYPE": "wireguard", "WIREGUARD_PRIVATE_KEY": "wOEI9rqqbDwnN8/Bpp22sVz48T71vJ4fYmFWujulwUU=", "WIREGUARD_ADDRESSES": "10.64.222.21/32", "SERVER_CITIES": "Amsterdam"}, "restart": "unless-stopped"},
        "qbittorrent": dict(lsio("qbittorrent", 8080), network_mode="service:gluetun", depends_on=["gluetun"], ports=None),
    },
    "wireguard": {"wireguard": lsio("wireguard", 51820, extra={"cap_add": ["NET_ADMIN", "SYS_MODULE"], "environment": dict(LSIO, SERVERURL="vpn.example.com", SERVERPORT="51820", PEERS="3", PEERDNS="auto", INTERNAL_SUBNET="10.13.13.0"), "volumes": ["./config:/config", "/lib/modules:/lib/modules"], "ports": ["51820:51820/udp"], "sysctls": ["net.ipv4.conf.all.src_valid_mark=1"]})},
    "wg-easy": {"wg-easy": {"image": "ghcr.io/wg-easy/wg-easy", "environment": ["LANG=en", "WG_HOST=vpn.example.com", "PASSWORD_HASH=$$2a$$12$$abcdef"], "volumes": ["etc_wireguard:/etc/wireguard"], "ports": ["51820:51820/udp", "51821:51821/tcp"], "restart": "unless-stopped", "cap_add": ["NET_ADMIN", "SYS_MODULE"], "sysctls": {"net.ipv4.ip_forward": 1, "net.ipv4.conf.all.src_valid_mark": 1}}, "#volumes": {"etc_wireguard": None}},
    "tailscale": {"tailscale": {"image": "tailscale/tailscale:latest", "hostname": "homelab", "environment": ["TS_AUTHKEY=tskey-auth-xxxx", "TS_STATE_DIR=/var/lib/tailscale", "TS_USERSPACE=false"], "volumes": ["./state:/var/lib/tailscale", "/dev/net/tun:/dev/net/tun"], "cap_add": ["net_admin", "sys_module"], "network_mode": "host", "restart": "unless-stopped"}},
    "pihole": {"pihole": {"image": "pihole/pihole:latest", "ports": ["53:53/tcp", "53:53/udp", "80:80/tcp"], "environment": {"TZ": "Europe/Berlin", "WEBPASSWORD": "changeme", "FTLCONF_LOCAL_IPV4": "10.0.0.5"}, "volumes": ["./etc-pihole:/etc/pihole", "./etc-dnsmasq.d:/etc/dnsmasq.d"], "cap_add": ["NET_ADMIN"], "restart": "unless-stopped", "dns": ["127.0.0.1", "1.1.1.1"]}},
    "adguard": {"adguardhome": {"image": "adguard/adguardhome", "restart": "unless-stopped", "volumes": ["./work:/opt/adguardhome/work", "./conf:/opt/adguardhome/conf"], "ports": ["53:53/tcp", "53:53/udp", "3000:3000/tcp", "853:853/tcp"]}},
    "unbound": {"unbound": {"image": "mvance/unbound:latest", "hostname": "unbound", "ports": ["5335:53/tcp", "5335:53/udp"], "volumes": ["./unbound:/opt/unbound/etc/unbound"], "restart": "unless-stopped", "healthcheck": {"disable": True}}},
    "traefik": {"traefik": {"image": "traefik:v3.1", "command": ["--api.insecure=true", "--providers.docker=true", "--providers.docker.exposedbydefault=false", "--entrypoints.web.address=:80", "--entrypoints.websecure.address=:443"], "ports": ["80:80", "443:443", "8080:8080"], "volumes": ["/var/run/docker.sock:/var/run/docker.sock:ro", "./letsencrypt:/letsencrypt"], "security_opt": ["no-new-privileges:true"], "restart": "unless-stopped", "labels": {"traefik.enable": "true", "traefik.http.routers.dashboard.rule": "Host(`traefik.lab`)"}}},
    "caddy": {"caddy": {"image": "caddy:2", "restart": "unless-stopped", "cap_add": ["NET_ADMIN"], "ports": ["80:80", "443:443", "443:443/udp"], "volumes": ["./Caddyfile:/etc/caddy/Caddyfile", "./site:/srv", "caddy_data:/data", "caddy_config:/config"]}, "#volumes": {"caddy_data": None, "caddy_config": None}},
    "nginx-proxy-manager": {"app": {"image": "jc21/nginx-proxy-manager:latest", "restart": "unless-stopped", "ports": ["80:80", "81:81", "443:443"], "volumes": ["./data:/data", "./letsencrypt:/etc/letsencrypt"]}},
    "portainer": {"portainer": {"image": "portainer/portainer-ce:latest", "container_name": "portainer", "restart": "always", "security_opt": ["no-new-privileges:true"], "volumes": ["/etc/localtime:/etc/localtime:ro", "/var/run/docker.sock:/var/run/docker.sock:ro", "portainer_data:/data"], "ports": ["9443:9443"]}, "#volumes": {"portainer_data": None}},
    "uptime-kuma": {"uptime-kuma": {"image": "louislam/uptime-kuma:1", "volumes": ["./data:/app/data", "/var/run/docker.sock:/var/run/docker.sock:ro"], "ports": ["3001:3001"], "restart": "always", "healthcheck": {"test": ["CMD", "extra/healthcheck"], "interval": "60s", "timeout": "30s", "retries": 5, "start_period": "180s"}}},
    "dozzle": {"dozzle": {"container_name": "dozzle", "image": "amir20/dozzle:latest", "volumes": ["/var/run/docker.sock:/var/run/docker.sock"], "ports": ["8080:8080"], "environment": {"DOZZLE_LEVEL": "info", "DOZZLE_TAILSIZE": 300}}},
    "watchtower": {"watchtower": {"image": "containrrr/watchtower", "volumes": ["/var/run/docker.sock:/var/run/docker.sock"], "environment": {"WATCHTOWER_CLEANUP": "true", "WATCHTOWER_SCHEDULE": "0 0 4 * * *", "WATCHTOWER_NOTIFICATION_URL": "ntfy://ntfy.sh/lab"}, "restart": "unless-stopped"}},
    "homepage": {"homepage": {"image": "ghcr.io/gethomepage/homepage:latest", "ports": ["3000:3000"], "volumes": ["./config:/app/config", "/var/run/docker.sock:/var/run/docker.sock:ro"], "environment": {"HOMEPAGE_ALLOWED_HOSTS": "home.lab:3000"}, "restart": "unless-stopped"}},
    "heimdall": {"heimdall": lsio("heimdall", 80, extra={"ports": ["80:80", "443:443"]})},
    "homarr": {"homarr": {"container_name": "homarr", "image": "ghcr.io/ajnart/homarr:latest", "restart": "unless-stopped", "volumes": ["/var/run/docker.sock:/var/run/docker.sock", "./homarr/configs:/app/data/configs", "./homarr/icons:/app/public/icons", "./homarr/data:/data"], "ports": ["7575:7575"]}},
    "vaultwarden": {"vaultwarden": {"image": "vaultwarden/server:latest", "container_name": "vaultwarden", "restart": "unless-stopped", "environment": {"DOMAIN": "https://vault.lab.example", "SIGNUPS_ALLOWED": "false", "ADMIN_TOKEN": "$$argon2id$$v=19$$m=65540,t=3,p=4$$abc"}, "volumes": ["./vw-data/:/data/"], "ports": ["127.0.0.1:8000:80"]}},
    "gitea": {
        "server": {"image": "gitea/gitea:1.22", "container_name": "gitea", "environment": ["USER_UID=1000", "USER_GID=1000", "GITEA__database__DB_TYPE=postgres", "GITEA__database__HOST=db:5432", "GITEA__database__NAME=gitea", "GITEA__database__USER=gitea", "GITEA__database__PASSWD=gitea"], "restart": "always", "networks": ["gitea"], "volumes": ["./gitea:/data", "/etc/timezone:/etc/timezone:ro", "/etc/localtime:/etc/localtime:ro"], "ports": ["3000:3000", "222:22"], "depends_on": ["db"]},
        "db": {"image": "postgres:14", "restart": "always", "environment": ["POSTGRES_USER=gitea", "POSTGRES_PASSWORD=gitea", "POSTGRES_DB=gitea"], "networks": ["gitea"], "volumes": ["./postgres:/var/lib/postgresql/data"]},
        "#networks": {"gitea": {"external": False}},
    },
    "nextcloud": {
        "db": {"image": "mariadb:10.11", "restart": "always", "command": "--transaction-isolation=READ-COMMITTED --log-bin=binlog --binlog-format=ROW", "volumes": ["db:/var/lib/mysql"], "environment": ["MYSQL_ROOT_PASSWORD=rootpw", "MYSQL_PASSWORD=ncpw", "MYSQL_DATABASE=nextcloud", "MYSQL_USER=nextcloud"]},
        "redis": {"image": "redis:alpine", "restart": "always"},
        "app": {"image": "nextcloud", "restart": "always", "ports": ["8080:80"], "links": ["db"], "volumes": ["nextcloud:/var/www/html"], "environment": ["MYSQL_PASSWORD=ncpw", "MYSQL_DATABASE=nextcloud", "MYSQL_USER=nextcloud", "MYSQL_HOST=db", "REDIS_HOST=redis"], "depends_on": ["db", "redis"]},
        "cron": {"image": "nextcloud", "restart": "always", "volumes": ["nextcloud:/var/www/html"], "entrypoint": "/cron.sh", "depends_on": ["db", "redis"]},
        "#volumes": {"db": None, "nextcloud": None},
    },
    "immich": {
        "immich-server": {"container_name": "immich_server", "image": "ghcr.io/immich-app/immich-server:${IMMICH_VERSION:-release}", "volumes": ["${UPLOAD_LOCATION}:/usr/src/app/upload", "/etc/localtime:/etc/localtime:ro"], "env_file": [".env"], "ports": ["2283:2283"], "depends_on": ["redis", "database"], "restart": "always", "healthcheck": {"disable": False}},
        "immich-machine-learning": {"container_name": "immich_machine_learning", "image": "ghcr.io/immich-app/immich-machine-learning:${IMMICH_VERSION:-release}", "volumes": ["model-cache:/cache"], "env_file": [".env"], "restart": "always", "healthcheck": {"disable": False}},
        "redis": {"container_name": "immich_redis", "image": "docker.io/redis:6.2-alpine", "healthcheck": {"test": "redis-cli ping || exit 1"}, "restart": "always"},
        "database": {"container_name": "immich_postgres", "image": "docker.io/tensorchord/pgvecto-rs:pg14-v0.2.0", "environment": {"POSTGRES_PASSWORD": "${DB_PASSWORD}", "POSTGRES_USER": "${DB_USERNAME}", "POSTGRES_DB": "${DB_DATABASE_NAME}", "POSTGRES_INITDB_ARGS": "--data-checksums"}, "volumes": ["${DB_DATA_LOCATION}:/var/lib/postgresql/data"], "healthcheck": {"test": "pg_isready --dbname='${DB_DATABASE_NAME}' --username='${DB_USERNAME}' || exit 1", "interval": "5m", "start_interval": "30s", "start_period": "5m"}, "command": ["postgres", "-c", "shared_preload_libraries=vectors.so", "-c", "search_path=\"$$user\", public, vectors", "-c", "logging_collector=on"], "restart": "always"},
        "#volumes": {"model-cache": None},
        "#dotenv": "UPLOAD_LOCATION=./library\nDB_DATA_LOCATION=./postgres\nIMMICH_VERSION=release\nDB_PASSWORD=postgres\nDB_USERNAME=postgres\nDB_DATABASE_NAME=immich\n",
    },
    "paperless": {
        "broker": {"image": "docker.io/library/redis:7", "restart": "unless-stopped", "volumes": ["redisdata:/data"]},
        "db": {"image": "docker.io/library/postgres:16", "restart": "unless-stopped", "volumes": ["pgdata:/var/lib/postgresql/data"], "environment": {"POSTGRES_DB": "paperless", "POSTGRES_USER": "paperless", "POSTGRES_PASSWORD": "paperless"}},
        "webserver": {"image": "ghcr.io/paperless-ngx/paperless-ngx:latest", "restart": "unless-stopped", "depends_on": ["db", "broker"], "ports": ["8000:8000"], "volumes": ["data:/usr/src/paperless/data", "media:/usr/src/paperless/media", "./export:/usr/src/paperless/export", "./consume:/usr/src/paperless/consume"], "env_file": "docker-compose.env", "environment": {"PAPERLESS_REDIS": "redis://broker:6379", "PAPERLESS_DBHOST": "db"}},
        "#volumes": {"data": None, "media": None, "pgdata": None, "redisdata": None},
        "#files": {"docker-compose.env": "PAPERLESS_TIME_ZONE=Europe/Berlin\nPAPERLESS_OCR_LANGUAGE=deu\nUSERMAP_UID=1000\n"},
    },
    "home-assistant": {"homeassistant": {"container_name": "homeassistant", "image": "ghcr.io/home-assistant/home-assistant:stable", "volumes": ["./config:/config", "/etc/localtime:/etc/localtime:ro", "/run/dbus:/run/dbus:ro"], "restart": "unless-stopped", "privileged": True, "network_mode": "host"}},
    "mosquitto": {"mosquitto": {"image": "eclipse-mosquitto:2", "ports": ["1883:1883", "9001:9001"], "volumes": ["./mosquitto/config:/mosquitto/config", "./mosquitto/data:/mosquitto/data", "./mosquitto/log:/mosquitto/log"], "restart": "unless-stopped", "stdin_open": True, "tty": True}},
    "zigbee2mqtt": {"zigbee2mqtt": {"container_name": "zigbee2mqtt", "image": "koenkk/zigbee2mqtt", "restart": "unless-stopped", "volumes": ["./data:/app/data", "/run/udev:/run/udev:ro"], "ports": ["8080:8080"], "environment": ["TZ=Europe/Berlin"], "devices": ["/dev/serial/by-id/usb-Texas_Instruments_TI_CC2531_USB_CDC___0X00124B0018ED3DDF-if00:/dev/ttyACM0"]}},
    "node-red": {"node-red": {"image": "nodered/node-red:latest", "environment": ["TZ=Europe/Berlin"], "ports": ["1880:1880"], "volumes": ["node-red-data:/data"]}, "#volumes": {"node-red-data": None}},
    "esphome": {"esphome": {"container_name": "esphome", "image": "ghcr.io/esphome/esphome", "volumes": ["./config:/config", "/etc/localtime:/etc/localtime:ro"], "restart": "always", "privileged": True, "network_mode": "host", "environment": ["USERNAME=admin", "PASSWORD=esphome"]}},
    "frigate": {"frigate": {"container_name": "frigate", "privileged": True, "restart": "unless-stopped", "image": "ghcr.io/blakeblackshear/frigate:stable", "shm_size": "512mb", "devices": ["/dev/bus/usb:/dev/bus/usb", "/dev/dri/renderD128:/dev/dri/renderD128"], "volumes": ["/etc/localtime:/etc/localtime:ro", "./config:/config", "/srv/frigate:/media/frigate", {"type": "tmpfs", "target": "/tmp/cache", "tmpfs": {"size": 1000000000}}], "ports": ["8971:8971", "8554:8554", "8555:8555/tcp", "8555:8555/udp"], "environment": {"FRIGATE_RTSP_PASSWORD": "password"}}},
    "scrypted": {"scrypted": {"image": "ghcr.io/koush/scrypted", "environment": ["SCRYPTED_WEBHOOK_UPDATE_AUTHORIZATION=Bearer SET_THIS_TO_SOME_RANDOM_TEXT", "SCRYPTED_WEBHOOK_UPDATE=http://localhost:10444/v1/update"], "container_name": "scrypted", "restart": "unless-stopped", "network_mode": "host", "volumes": ["./volume:/server/volume"], "logging": {"driver": "json-file", "options": {"max-size": "10m", "max-file": "10"}}, "labels": ["com.centurylinklabs.watchtower.scope=scrypted"]}},
    "grafana": {"grafana": {"image": "grafana/grafana-oss:11.2.0", "container_name": "grafana", "restart": "unless-stopped", "user": "472", "ports": ["3000:3000"], "volumes": ["grafana-storage:/var/lib/grafana"], "environment": {"GF_SECURITY_ADMIN_PASSWORD": "admin", "GF_INSTALL_PLUGINS": "grafana-clock-panel"}}, "#volumes": {"grafana-storage": None}},
    "prometheus-stack": {
        "prometheus": {"image": "prom/prometheus:v2.54.1", "command": ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.retention.time=30d"], "volumes": ["./prometheus.yml:/etc/prometheus/prometheus.yml:ro", "prom_data:/prometheus"], "ports": ["9090:9090"], "restart": "unless-stopped"},
        "node-exporter": {"image": "prom/node-exporter:latest", "command": ["--path.rootfs=/host"], "network_mode": "host", "pid": "host", "restart": "unless-stopped", "volumes": ["/:/host:ro,rslave"]},
        "cadvisor": {"image": "gcr.io/cadvisor/cadvisor:v0.49.1", "ports": ["8081:8080"], "volumes": ["/:/rootfs:ro", "/var/run:/var/run:ro", "/sys:/sys:ro", "/var/lib/docker/:/var/lib/docker:ro", "/dev/disk/:/dev/disk:ro"], "devices": ["/dev/kmsg"], "privileged": True, "restart": "unless-stopped"},
        "#volumes": {"prom_data": None},
    },
    "loki-promtail": {
        "loki": {"image": "grafana/loki:3.1.1", "ports": ["3100:3100"], "command": "-config.file=/etc/loki/local-config.yaml", "restart": "unless-stopped"},
        "promtail": {"image": "grafana/promtail:3.1.1", "volumes": ["/var/log:/var/log:ro", "/var/lib/docker/containers:/var/lib/docker/containers:ro"], "command": "-config.file=/etc/promtail/config.yml", "depends_on": ["loki"], "restart": "unless-stopped"},
    },
    "netdata": {"netdata": {"image": "netdata/netdata:stable", "container_name": "netdata", "pid": "host", "network_mode": "host", "restart": "unless-stopped", "cap_add": ["SYS_PTRACE", "SYS_ADMIN"], "security_opt": ["apparmor:unconfined"], "volumes": ["netdataconfig:/etc/netdata", "netdatalib:/var/lib/netdata", "netdatacache:/var/cache/netdata", "/:/host/root:ro,rslave", "/etc/passwd:/host/etc/passwd:ro", "/proc:/host/proc:ro", "/sys:/host/sys:ro", "/var/run/docker.sock:/var/run/docker.sock:ro"]}, "#volumes": {"netdataconfig": None, "netdatalib": None, "netdatacache": None}},
    "influxdb": {"influxdb": {"image": "influxdb:2.7", "ports": ["8086:8086"], "volumes": ["influxdb2-data:/var/lib/influxdb2", "influxdb2-config:/etc/influxdb2"], "environment": {"DOCKER_INFLUXDB_INIT_MODE": "setup", "DOCKER_INFLUXDB_INIT_USERNAME": "admin", "DOCKER_INFLUXDB_INIT_PASSWORD": "adminpassword", "DOCKER_INFLUXDB_INIT_ORG": "lab", "DOCKER_INFLUXDB_INIT_BUCKET": "home", "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN": "secret-token"}}, "#volumes": {"influxdb2-data": None, "influxdb2-config": None}},
    "speedtest-tracker": {"speedtest-tracker": {"image": "lscr.io/linuxserver/speedtest-tracker:latest", "restart": "unless-stopped", "container_name": "speedtest-tracker", "ports": ["8080:80", "8443:443"], "environment": dict(LSIO, APP_KEY="base64:xxxx", DB_CONNECTION="sqlite"), "volumes": ["./data:/config"]}},
    "changedetection": {
        "changedetection": {"image": "ghcr.io/dgtlmoon/changedetection.io", "container_name": "changedetection", "hostname": "changedetection", "volumes": ["changedetection-data:/datastore"], "environment": ["PLAYWRIGHT_DRIVER_URL=ws://playwright-chrome:3000"], "ports": ["127.0.0.1:5000:5000"], "restart": "unless-stopped", "depends_on": {"playwright-chrome": {"condition": "service_started"}}},
        "playwright-chrome": {"hostname": "playwright-chrome", "image": "dgtlmoon/sockpuppetbrowser:latest", "cap_add": ["SYS_ADMIN"], "restart": "unless-stopped", "environment": ["SCREEN_WIDTH=1920", "SCREEN_HEIGHT=1024", "SCREEN_DEPTH=16", "MAX_CONCURRENT_CHROME_PROCESSES=10"]},
        "#volumes": {"changedetection-data": None},
    },
    "searxng": {
        "redis": {"container_name": "redis", "image": "docker.io/valkey/valkey:8-alpine", "command": "valkey-server --save 30 1 --loglevel warning", "restart": "unless-stopped", "networks": ["searxng"], "volumes": ["valkey-data2:/data"], "cap_drop": ["ALL"], "cap_add": ["SETGID", "SETUID", "DAC_OVERRIDE"], "logging": {"driver": "json-file", "options": {"max-size": "1m", "max-file": "1"}}},
        "searxng": {"container_name": "searxng", "image": "docker.io/searxng/searxng:latest", "restart": "unless-stopped", "networks": ["searxng"], "ports": ["127.0.0.1:8080:8080"], "volumes": ["./searxng:/etc/searxng:rw"], "environment": ["SEARXNG_BASE_URL=https://search.lab/"], "cap_drop": ["ALL"], "cap_add": ["CHOWN", "SETGID", "SETUID"], "logging": {"driver": "json-file", "options": {"max-size": "1m", "max-file": "1"}}},
        "#networks": {"searxng": None}, "#volumes": {"valkey-data2": None},
    },
    "stirling-pdf": {"stirling-pdf": {"image": "frooodle/s-pdf:latest", "ports": ["8080:8080"], "volumes": ["./trainingData:/usr/share/tessdata", "./extraConfigs:/configs"], "environment": ["DOCKER_ENABLE_SECURITY=false", "INSTALL_BOOK_AND_ADVANCED_HTML_OPS=false", "LANGS=en_GB"]}},
    "it-tools": {"it-tools": {"image": "corentinth/it-tools:latest", "ports": ["8080:80"], "restart": "unless-stopped", "container_name": "it-tools"}},
    "code-server": {"code-server": lsio("code-server", 8443, extra={"environment": dict(LSIO, PASSWORD="password", SUDO_PASSWORD="password", DEFAULT_WORKSPACE="/config/workspace")})},
    "filebrowser": {"filebrowser": {"image": "filebrowser/filebrowser:s6", "volumes": ["/srv/files:/srv", "./filebrowser.db:/database/filebrowser.db", "./settings.json:/config/settings.json"], "environment": ["PUID=1000", "PGID=1000"], "ports": ["8095:80"], "restart": "unless-stopped"}},
    "syncthing": {"syncthing": {"image": "syncthing/syncthing", "container_name": "syncthing", "hostname": "my-syncthing", "environment": ["PUID=1000", "PGID=1000"], "volumes": ["/srv/sync:/var/syncthing"], "network_mode": "host", "restart": "unless-stopped", "healthcheck": {"test": "curl -fkLsS -m 2 127.0.0.1:8384/rest/noauth/health | grep -o --color=never OK || exit 1", "interval": "1m", "timeout": "10s", "retries": 3}}},
    "minio": {"minio": {"image": "quay.io/minio/minio", "command": "server /data --console-address \":9001\"", "ports": ["9000:9000", "9001:9001"], "environment": {"MINIO_ROOT_USER": "admin", "MINIO_ROOT_PASSWORD": "changeme123"}, "volumes": ["./data:/data"], "healthcheck": {"test": ["CMD", "mc", "ready", "local"], "interval": "5s", "timeout": "5s", "retries": 5}}},
    "photoprism": {
        "photoprism": {"image": "photoprism/photoprism:latest", "stop_grace_period": "10s", "depends_on": ["mariadb"], "security_opt": ["seccomp:unconfined", "apparmor:unconfined"], "ports": ["2342:2342"], "environment": {"PHOTOPRISM_ADMIN_USER": "admin", "PHOTOPRISM_ADMIN_PASSWORD": "insecure", "PHOTOPRISM_DATABASE_DRIVER": "mysql", "PHOTOPRISM_DATABASE_SERVER": "mariadb:3306", "PHOTOPRISM_DATABASE_PASSWORD": "insecure"}, "working_dir": "/photoprism", "volumes": ["~/Pictures:/photoprism/originals", "./storage:/photoprism/storage"]},
        "mariadb": {"image": "mariadb:11", "restart": "unless-stopped", "stop_grace_period": "5s", "security_opt": ["seccomp:unconfined", "apparmor:unconfined"], "command": "--innodb-buffer-pool-size=512M --transaction-isolation=READ-COMMITTED", "volumes": ["./database:/var/lib/mysql"], "environment": {"MARIADB_AUTO_UPGRADE": "1", "MARIADB_DATABASE": "photoprism", "MARIADB_USER": "photoprism", "MARIADB_PASSWORD": "insecure", "MARIADB_ROOT_PASSWORD": "insecure"}},
    },
    "mealie": {"mealie": {"image": "ghcr.io/mealie-recipes/mealie:v1.12.0", "container_name": "mealie", "restart": "always", "ports": ["9925:9000"], "deploy": {"resources": {"limits": {"memory": "1000M"}}}, "volumes": ["mealie-data:/app/data/"], "environment": {"ALLOW_SIGNUP": "false", "PUID": 1000, "PGID": 1000, "TZ": "America/Anchorage", "BASE_URL": "https://mealie.yourdomain.com"}}, "#volumes": {"mealie-data": None}},
    "freshrss": {"freshrss": {"image": "freshrss/freshrss:latest", "container_name": "freshrss", "hostname": "freshrss", "restart": "unless-stopped", "logging": {"options": {"max-size": "10m"}}, "volumes": ["data:/var/www/FreshRSS/data", "extensions:/var/www/FreshRSS/extensions"], "ports": ["8080:80"], "environment": {"TZ": "Europe/Paris", "CRON_MIN": "3,33"}}, "#volumes": {"data": None, "extensions": None}},
    "miniflux": {
        "miniflux": {"image": "miniflux/miniflux:latest", "ports": ["80:8080"], "depends_on": {"db": {"condition": "service_healthy"}}, "environment": ["DATABASE_URL=postgres://miniflux:secret@db/miniflux?sslmode=disable", "RUN_MIGRATIONS=1", "CREATE_ADMIN=1", "ADMIN_USERNAME=admin", "ADMIN_PASSWORD=test123"]},
        "db": {"image": "postgres:15", "environment": ["POSTGRES_USER=miniflux", "POSTGRES_PASSWORD=secret", "POSTGRES_DB=miniflux"], "volumes": ["miniflux-db:/var/lib/postgresql/data"], "healthcheck": {"test": ["CMD", "pg_isready", "-U", "miniflux"], "interval": "10s", "start_period": "30s"}},
        "#volumes": {"miniflux-db": None},
    },
    "authelia": {"authelia": {"image": "authelia/authelia", "container_name": "authelia", "volumes": ["./authelia:/config"], "expose": [9091], "restart": "unless-stopped", "healthcheck": {"disable": True}, "environment": {"TZ": "Europe/Berlin"}}},
    "n8n": {"n8n": {"image": "docker.n8n.io/n8nio/n8n", "restart": "always", "ports": ["127.0.0.1:5678:5678"], "environment": ["N8N_HOST=n8n.lab", "N8N_PORT=5678", "N8N_PROTOCOL=https", "NODE_ENV=production", "WEBHOOK_URL=https://n8n.lab/", "GENERIC_TIMEZONE=Europe/Berlin"], "volumes": ["n8n_data:/home/node/.n8n", "./local-files:/files"]}, "#volumes": {"n8n_data": None}},
    "ollama": {
        "ollama": {"image": "ollama/ollama:latest", "container_name": "ollama", "volumes": ["ollama:/root/.ollama"], "ports": ["11434:11434"], "restart": "unless-stopped", "deploy": {"resources": {"reservations": {"devices": [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]}}}},
        "open-webui": {"image": "ghcr.io/open-webui/open-webui:main", "container_name": "open-webui", "volumes": ["open-webui:/app/backend/data"], "depends_on": ["ollama"], "ports": ["3000:8080"], "environment": {"OLLAMA_BASE_URL": "http://ollama:11434", "WEBUI_SECRET_KEY": ""}, "extra_hosts": ["host.docker.internal:host-gateway"], "restart": "unless-stopped"},
        "#volumes": {"ollama": None, "open-webui": None},
    },
    "tdarr": {"tdarr": {"container_name": "tdarr", "image": "ghcr.io/haveagitgat/tdarr:latest", "restart": "unless-stopped", "network_mode": "bridge", "ports": ["8265:8265", "8266:8266"], "environment": ["TZ=Europe/London", "PUID=1000", "PGID=1000", "UMASK_SET=002", "serverIP=0.0.0.0", "serverPort=8266", "webUIPort=8265", "internalNode=true", "inContainer=true", "ffmpegVersion=6", "nodeName=MyInternalNode"], "volumes": ["./server:/app/server", "./configs:/app/configs", "./logs:/app/logs", "/srv/media:/media", "/transcode_cache:/temp"], "devices": ["/dev/dri:/dev/dri"], "gpus": "all"}},
    "unifi": {"unifi-network-application": lsio("unifi-network-application", 8443, extra={"environment": dict(LSIO, MONGO_USER="unifi", MONGO_PASS="pass", MONGO_HOST="unifi-db", MONGO_PORT="27017"), "ports": ["8443:8443", "3478:3478/udp", "10001:10001/udp", "8080:8080"]})},
    "matrix": {
        "synapse": {"image": "matrixdotorg/synapse:latest", "restart": "unless-stopped", "environment": ["SYNAPSE_CONFIG_PATH=/data/homeserver.yaml"], "volumes": ["./files:/data"], "depends_on": ["db"], "ports": ["8448:8448/tcp"]},
        "db": {"image": "docker.io/postgres:15-alpine", "environment": ["POSTGRES_USER=synapse", "POSTGRES_PASSWORD=changeme", "POSTGRES_INITDB_ARGS=--encoding=UTF-8 --lc-collate=C --lc-ctype=C"], "volumes": ["./schemas:/var/lib/postgresql/data"]},
    },
    "elasticsearch": {"elasticsearch": {"image": "docker.elastic.co/elasticsearch/elasticsearch:8.15.0", "environment": ["discovery.type=single-node", "ES_JAVA_OPTS=-Xms512m -Xmx512m", "xpack.security.enabled=false"], "ulimits": {"memlock": {"soft": -1, "hard": -1}, "nofile": {"soft": 65536, "hard": 65536}}, "mem_limit": "1g", "volumes": ["esdata:/usr/share/elasticsearch/data"], "ports": ["9200:9200"]}, "#volumes": {"esdata": None}},
    "mongodb": {"mongo": {"image": "mongo:7", "restart": "always", "environment": {"MONGO_INITDB_ROOT_USERNAME": "root", "MONGO_INITDB_ROOT_PASSWORD": "example"}, "volumes": ["mongo-data:/data/db"], "ports": ["127.0.0.1:27017:27017"]}, "#volumes": {"mongo-data": None}},
    "redis": {"redis": {"image": "redis:7-alpine", "command": "redis-server --appendonly yes", "volumes": ["redis-data:/data"], "sysctls": {"net.core.somaxconn": 1024}, "restart": "always"}, "#volumes": {"redis-data": None}},
    "postgres": {"postgres": {"image": "postgres:16", "shm_size": "128mb", "environment": {"POSTGRES_PASSWORD": "example"}, "volumes": ["pg:/var/lib/postgresql/data"], "healthcheck": {"test": ["CMD-SHELL", "pg_isready -U postgres"], "interval": "10s", "timeout": "5s", "retries": 5}}, "#volumes": {"pg": None}},
    "mariadb": {"mariadb": {"image": "mariadb:11", "environment": {"MARIADB_ROOT_PASSWORD": "example"}, "volumes": ["./db:/var/lib/mysql"], "restart": "always", "stop_grace_period": "1m"}},
    "duplicati": {"duplicati": lsio("duplicati", 8200, volumes=["/srv/backups:/backups", "/srv:/source:ro"])},
    "kopia": {"kopia": {"image": "kopia/kopia:latest", "hostname": "Hostname", "container_name": "Kopia", "restart": "unless-stopped", "ports": ["51515:51515"], "command": ["server", "start", "--disable-csrf-token-checks", "--insecure", "--address=0.0.0.0:51515", "--server-username=admin", "--server-password=admin"], "environment": {"KOPIA_PASSWORD": "repopassword", "USER": "User"}, "volumes": ["./config:/app/config", "./cache:/app/cache", "/srv:/data:ro"], "cap_add": ["SYS_ADMIN"], "security_opt": ["apparmor:unconfined"], "devices": ["/dev/fuse:/dev/fuse:rwm"]}},
    "flaresolverr": {"flaresolverr": {"image": "ghcr.io/flaresolverr/flaresolverr:latest", "container_name": "flaresolverr", "environment": ["LOG_LEVEL=${LOG_LEVEL:-info}", "LOG_HTML=${LOG_HTML:-false}", "CAPTCHA_SOLVER=${CAPTCHA_SOLVER:-none}", "TZ=Europe/London"], "ports": ["${PORT:-8191}:8191"], "restart": "unless-stopped"}},
    "ntfy": {"ntfy": {"image": "binwiederhier/ntfy", "container_name": "ntfy", "command": ["serve"], "environment": ["TZ=UTC"], "user": "1000:1000", "volumes": ["/var/cache/ntfy:/var/cache/ntfy", "/etc/ntfy:/etc/ntfy"], "ports": ["80:80"], "healthcheck": {"test": ["CMD-SHELL", "wget -q --tries=1 http://localhost:80/v1/health -O - | grep -Eo '\"healthy\"\\s*:\\s*true' || exit 1"], "interval": "60s", "timeout": "10s", "retries": 3, "start_period": "40s"}, "init": True, "restart": "unless-stopped"}},
    "gotify": {"gotify": {"image": "gotify/server", "ports": ["8080:80"], "environment": ["GOTIFY_DEFAULTUSER_PASS=custom"], "volumes": ["./gotify_data:/app/data"]}},
    "actual": {"actual_server": {"image": "docker.io/actualbudget/actual-server:latest", "ports": ["5006:5006"], "volumes": ["./actual-data:/data"], "healthcheck": {"test": ["CMD-SHELL", "node src/scripts/health-check.js"], "interval": "60s", "timeout": "10s", "retries": 3, "start_period": "20s"}, "restart": "unless-stopped"}},
    "firefly": {
        "app": {"image": "fireflyiii/core:latest", "hostname": "app", "container_name": "firefly_iii_core", "restart": "always", "volumes": ["firefly_iii_upload:/var/www/html/storage/upload"], "env_file": ".env", "networks": ["firefly_iii"], "ports": ["80:8080"], "depends_on": ["db"]},
        "db": {"image": "mariadb:lts", "hostname": "db", "container_name": "firefly_iii_db", "restart": "always", "env_file": ".db.env", "networks": ["firefly_iii"], "volumes": ["firefly_iii_db:/var/lib/mysql"]},
        "#volumes": {"firefly_iii_upload": None, "firefly_iii_db": None}, "#networks": {"firefly_iii": {"driver": "bridge"}},
        "#dotenv": "APP_KEY=SomeRandomStringOf32CharsExactly\nDB_HOST=db\nDB_PORT=3306\nDB_CONNECTION=mysql\nDB_DATABASE=firefly\nDB_USERNAME=firefly\nDB_PASSWORD=secret_firefly_password\n",
        "#files": {".db.env": "MYSQL_RANDOM_ROOT_PASSWORD=yes\nMYSQL_USER=firefly\nMYSQL_PASSWORD=secret_firefly_password\nMYSQL_DATABASE=firefly\n"},
    },
    "bookstack": {
        "bookstack": lsio("bookstack", 6875, extra={"environment": dict(LSIO, APP_URL="http://bookstack.lab", DB_HOST="bookstack_db", DB_USER="bookstack", DB_PASS="dbpass", DB_DATABASE="bookstackapp"), "ports": ["6875:80"], "depends_on": ["bookstack_db"]}),
        "bookstack_db": {"image": "lscr.io/linuxserver/mariadb", "environment": dict(LSIO, MYSQL_ROOT_PASSWORD="rootpass", MYSQL_DATABASE="bookstackapp", MYSQL_USER="bookstack", MYSQL_PASSWORD="dbpass"), "volumes": ["./bookstack_db_data:/config"], "restart": "unless-stopped"},
    },
    "wikijs": {
        "db": {"image": "postgres:15-alpine", "environment": {"POSTGRES_DB": "wiki", "POSTGRES_PASSWORD": "wikijsrocks", "POSTGRES_USER": "wikijs"}, "logging": {"driver": "none"}, "restart": "unless-stopped", "volumes": ["db-data:/var/lib/postgresql/data"]},
        "wiki": {"image": "ghcr.io/requarks/wiki:2", "depends_on": ["db"], "environment": {"DB_TYPE": "postgres", "DB_HOST": "db", "DB_PORT": 5432, "DB_USER": "wikijs", "DB_PASS": "wikijsrocks", "DB_NAME": "wiki"}, "restart": "unless-stopped", "ports": ["80:3000"]},
        "#volumes": {"db-data": None},
    },
    "linkding": {"linkding": {"container_name": "linkding", "image": "sissbruecker/linkding:latest", "ports": ["${LD_HOST_PORT:-9090}:9090"], "volumes": ["${LD_HOST_DATA_DIR:-./data}:/etc/linkding/data"], "env_file": ".env", "restart": "unless-stopped"}, "#dotenv": "LD_CONTAINER_NAME=linkding\nLD_HOST_PORT=9090\nLD_HOST_DATA_DIR=./data\nLD_SUPERUSER_NAME=admin\nLD_SUPERUSER_PASSWORD=admin\n"},
    "shlink": {"shlink": {"image": "shlinkio/shlink:stable", "ports": ["8080:8080"], "environment": ["DEFAULT_DOMAIN=s.lab", "IS_HTTPS_ENABLED=true", "GEOLITE_LICENSE_KEY=kjh23ljkbndskj345"]}},
    "plausible-build": {"plausible": {"build": {"context": ".", "dockerfile": "Dockerfile"}, "restart": "always", "ports": ["8000:8000"]}},
    "custom-app": {"app": {"build": ".", "image": "registry.lab/custom-app:latest", "ports": ["3000:3000"], "environment": {"NODE_ENV": "production"}}},
    "kasm": {"kasm": {"image": "lscr.io/linuxserver/kasm:latest", "privileged": True, "environment": dict(LSIO, KASM_PORT="443"), "volumes": ["./data:/opt", "./profiles:/profiles", "/dev/input:/dev/input", "/run/udev/data:/run/udev/data"], "ports": ["3000:3000", "443:443"], "restart": "unless-stopped"}},
    "crowdsec": {"crowdsec": {"image": "crowdsecurity/crowdsec", "environment": {"COLLECTIONS": "crowdsecurity/traefik crowdsecurity/http-cve"}, "volumes": ["./acquis.yaml:/etc/crowdsec/acquis.yaml", "crowdsec-db:/var/lib/crowdsec/data/", "crowdsec-config:/etc/crowdsec/", "/var/log/traefik:/var/log/traefik:ro"], "security_opt": ["no-new-privileges=true"], "restart": "unless-stopped"}, "#volumes": {"crowdsec-db": None, "crowdsec-config": None}},
    "cloudflared": {"cloudflared": {"image": "cloudflare/cloudflared:latest", "command": "tunnel --no-autoupdate run", "environment": ["TUNNEL_TOKEN=${TUNNEL_TOKEN:?set TUNNEL_TOKEN}"], "restart": "unless-stopped"}, "#env": {"TUNNEL_TOKEN": "eyJhIjoi"}},
    "ddclient": {"ddclient": lsio("ddclient", 0, extra={"ports": None})},
    "samba": {"samba": {"image": "dperson/samba", "ports": ["139:139", "445:445"], "read_only": True, "tmpfs": ["/tmp"], "restart": "unless-stopped", "stdin_open": True, "tty": True, "volumes": ["/srv/share:/mnt:z"], "command": "-s \"share;/mnt;yes;no;no;all\" -p"}},
    "diun": {"diun": {"image": "crazymax/diun:latest", "command": "serve", "volumes": ["./data:/data", "/var/run/docker.sock:/var/run/docker.sock"], "environment": ["TZ=Europe/Paris", "DIUN_WATCH_SCHEDULE=0 */6 * * *", "DIUN_PROVIDERS_DOCKER=true"], "labels": ["diun.enable=true"], "restart": "always"}},
    "glances": {"glances": {"image": "nicolargo/glances:latest-full", "restart": "always", "pid": "host", "volumes": ["/var/run/docker.sock:/var/run/docker.sock"], "environment": ["GLANCES_OPT=-w"], "network_mode": "host"}},
    "scrutiny": {"scrutiny": {"container_name": "scrutiny", "image": "ghcr.io/analogj/scrutiny:master-omnibus", "cap_add": ["SYS_RAWIO"], "ports": ["8080:8080", "8086:8086"], "volumes": ["/run/udev:/run/udev:ro", "./config:/opt/scrutiny/config", "./influxdb:/opt/scrutiny/influxdb"], "devices": ["/dev/sda", "/dev/sdb"]}},
    "guacamole": {
        "guacd": {"image": "guacamole/guacd", "restart": "always", "volumes": ["./drive:/drive:rw", "./record:/record:rw"]},
        "guacamole": {"image": "guacamole/guacamole", "depends_on": ["guacd"], "environment": {"GUACD_HOSTNAME": "guacd", "POSTGRES_DATABASE": "guacamole_db", "POSTGRES_HOSTNAME": "postgres", "POSTGRES_PASSWORD": "ChooseYourOwnPasswordHere1234", "POSTGRES_USER": "guacamole_user"}, "links": ["guacd"], "ports": ["8080:8080/tcp"], "restart": "always"},
    },
    "openspeedtest": {"speedtest": {"restart": "unless-stopped", "container_name": "openspeedtest", "ports": ["3000:3000", "3001:3001"], "image": "openspeedtest/latest"}},
    "librespeed": {"librespeed": lsio("librespeed", 80, extra={"environment": dict(LSIO, PASSWORD="PASSWORD")})},
    "pairdrop": {"pairdrop": lsio("pairdrop", 3000, extra={"environment": dict(LSIO, WS_FALLBACK="false", RATE_LIMIT="false")})},
    "excalidraw": {"excalidraw": {"image": "excalidraw/excalidraw:latest", "ports": ["5000:80"], "restart": "on-failure", "stdin_open": True, "healthcheck": {"disable": True}, "environment": ["NODE_ENV=production"]}},
    "drawio": {"drawio": {"image": "jgraph/drawio", "ports": ["8080:8080", "8443:8443"], "healthcheck": {"test": ["CMD-SHELL", "curl -f http://localhost:8080 || exit 1"], "interval": "1m30s", "timeout": "10s", "retries": 5, "start_period": "10s"}}},
    "jupyter": {"jupyter": {"image": "quay.io/jupyter/scipy-notebook:latest", "ports": ["8888:8888"], "volumes": ["./work:/home/jovyan/work"], "environment": ["JUPYTER_TOKEN=letmein"], "user": "root", "mem_limit": "4g", "cpus": 2}},
    "rustdesk": {
        "hbbs": {"container_name": "hbbs", "image": "rustdesk/rustdesk-server:latest", "command": "hbbs", "volumes": ["./data:/root"], "network_mode": "host", "depends_on": ["hbbr"], "restart": "unless-stopped"},
        "hbbr": {"container_name": "hbbr", "image": "rustdesk/rustdesk-server:latest", "command": "hbbr", "volumes": ["./data:/root"], "network_mode": "host", "restart": "unless-stopped"},
    },
    "minecraft": {"mc": {"image": "itzg/minecraft-server", "tty": True, "stdin_open": True, "ports": ["25565:25565"], "environment": {"EULA": "TRUE", "MEMORY": "4G", "TYPE": "PAPER"}, "volumes": ["./data:/data"], "restart": "unless-stopped", "stop_grace_period": "1m30s"}},
    "valheim": {"valheim": {"image": "ghcr.io/lloesche/valheim-server", "cap_add": ["sys_nice"], "volumes": ["./config:/config", "./data:/opt/valheim"], "ports": ["2456-2457:2456-2457/udp", "9001:9001/tcp"], "env_file": ["./valheim.env"], "restart": "always", "stop_grace_period": "2m"}, "#files": {"valheim.env": "SERVER_NAME=My Server\nWORLD_NAME=Dedicated\nSERVER_PASS=secret\nSERVER_PUBLIC=true\n"}},
    "octoprint": {"octoprint": {"image": "octoprint/octoprint", "restart": "unless-stopped", "ports": ["80:80"], "devices": ["/dev/ttyACM0:/dev/ttyACM0", "/dev/video0:/dev/video0"], "volumes": ["octoprint:/octoprint"], "environment": ["ENABLE_MJPG_STREAMER=true"]}, "#volumes": {"octoprint": None}},
    "rtl433": {"rtl433": {"image": "hertzg/rtl_433:latest", "devices": ["/dev/bus/usb"], "command": ["-Mtime:unix:usec:utc", "-Fmqtt://mosquitto:1883"], "restart": "unless-stopped", "logging": {"driver": "local", "options": {"max-size": "5m"}}}},
    "uptime-profiles": {
        "app": {"image": "louislam/uptime-kuma:1", "ports": ["3001:3001"], "volumes": ["kuma:/app/data"]},
        "debug": {"image": "nicolaka/netshoot", "command": "sleep infinity", "profiles": ["debug"], "network_mode": "service:app"},
        "#volumes": {"kuma": None},
    },
    "authentik": {
        "postgresql": {"image": "docker.io/library/postgres:16-alpine", "restart": "unless-stopped", "healthcheck": {"test": ["CMD-SHELL", "pg_isready -d $${POSTGRES_DB} -U $${POSTGRES_USER}"], "start_period": "20s", "interval": "30s", "retries": 5, "timeout": "5s"}, "volumes": ["database:/var/lib/postgresql/data"], "environment": {"POSTGRES_PASSWORD": "${PG_PASS:?database password required}", "POSTGRES_USER": "${PG_USER:-authentik}", "POSTGRES_DB": "${PG_DB:-authentik}"}, "env_file": [".env"]},
        "redis": {"image": "docker.io/library/redis:alpine", "command": "--save 60 1 --loglevel warning", "restart": "unless-stopped", "healthcheck": {"test": ["CMD-SHELL", "redis-cli ping | grep PONG"], "start_period": "20s", "interval": "30s", "retries": 5, "timeout": "3s"}, "volumes": ["redis:/data"]},
        "server": {"image": "${AUTHENTIK_IMAGE:-ghcr.io/goauthentik/server}:${AUTHENTIK_TAG:-2024.8.0}", "restart": "unless-stopped", "command": "server", "environment": {"AUTHENTIK_REDIS__HOST": "redis", "AUTHENTIK_POSTGRESQL__HOST": "postgresql", "AUTHENTIK_POSTGRESQL__PASSWORD": "${PG_PASS}"}, "volumes": ["./media:/media", "./custom-templates:/templates"], "env_file": [".env"], "ports": ["${COMPOSE_PORT_HTTP:-9000}:9000", "${COMPOSE_PORT_HTTPS:-9443}:9443"], "depends_on": {"postgresql": {"condition": "service_healthy"}, "redis": {"condition": "service_healthy"}}},
        "worker": {"image": "${AUTHENTIK_IMAGE:-ghcr.io/goauthentik/server}:${AUTHENTIK_TAG:-2024.8.0}", "restart": "unless-stopped", "command": "worker", "environment": {"AUTHENTIK_REDIS__HOST": "redis", "AUTHENTIK_POSTGRESQL__HOST": "postgresql", "AUTHENTIK_POSTGRESQL__PASSWORD": "${PG_PASS}"}, "user": "root", "volumes": ["/var/run/docker.sock:/var/run/docker.sock", "./media:/media", "./certs:/certs", "./custom-templates:/templates"], "env_file": [".env"], "depends_on": {"postgresql": {"condition": "service_healthy"}, "redis": {"condition": "service_healthy"}}},
        "#volumes": {"database": {"driver": "local"}, "redis": {"driver": "local"}},
        "#dotenv": "PG_PASS=generated-password\nAUTHENTIK_SECRET_KEY=generated-key\nAUTHENTIK_ERROR_REPORTING__ENABLED=true\n",
    },
}


def vary(rng, svc):
    """Rewrites one service into other syntaxes compose accepts for the same settings."""
    svc = {k: v for k, v in svc.items() if v is not None}
    env = svc.get("environment")
    if isinstance(env, dict) and rng.random() < 0.4:
        svc["environment"] = [f"{k}={v}" for k, v in env.items()]
    elif isinstance(env, list) and rng.random() < 0.3:
        svc["environment"] = dict(e.split("=", 1) for e in env)
    ports = svc.get("ports")
    if ports and rng.random() < 0.25:
        long = []
        for p in ports:
            text, proto = (p.rsplit("/", 1) + ["tcp"])[:2] if "/" in p else (p, "tcp")
            parts = text.split(":")
            if len(parts) == 2 and "-" not in text and "$" not in text:
                long.append({"target": int(parts[1]), "published": parts[0], "protocol": proto})
            else:
                long.append(p)
        svc["ports"] = long
    deps = svc.get("depends_on")
    if isinstance(deps, list) and rng.random() < 0.3:
        svc["depends_on"] = {d: {"condition": "service_started"} for d in deps}
    vols = svc.get("volumes")
    if vols and rng.random() < 0.2:
        out = []
        for v in vols:
            if isinstance(v, str) and v.count(":") == 1 and v.startswith("/"):
                src, dst = v.split(":")
                out.append({"type": "bind", "source": src, "target": dst})
            else:
                out.append(v)
        svc["volumes"] = out
    return svc


def main():
    rng = random.Random(12)
    count = 0
    for name, stack in sorted(STACKS.items()):
        for variant in range(2 if len(stack) <= 2 else 1):
            rng_services = {}
            top = {}
            files = {}
            dotenv = None
            for key, value in stack.items():
                if key == "#volumes":
                    top["volumes"] = value
                elif key == "#networks":
                    top["networks"] = value
                elif key == "#files":
                    files.update(value)
                elif key == "#dotenv":
                    dotenv = value
                elif key == "#env":
                    dotenv = "".join(f"{k}={v}\n" for k, v in value.items())
                else:
                    rng_services[key] = vary(rng, value) if variant else {k: v for k, v in value.items() if v is not None}
            if variant and len(rng_services) == 1 and rng.random() < 0.5:
                # The same service with its settings behind an anchor, as shared stacks do.
                (svc_name, svc), = rng_services.items()
                common = {k: svc.pop(k) for k in ["restart", "logging"] if k in svc}
                if not common:
                    common = {"restart": "unless-stopped"}
                doc = {"x-common": common, "services": {svc_name: svc}}
                doc.update(top)
                text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=200)
                text = text.replace("x-common:", "x-common: &common", 1)
                text = text.replace(f"  {svc_name}:\n", f"  {svc_name}:\n    <<: *common\n", 1)
            else:
                doc = {"services": rng_services}
                doc.update(top)
                text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=200)
            folder = os.path.join(HERE, f"{name}{'-v2' if variant else ''}")
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, "compose.yaml"), "w") as f:
                f.write(text)
            for fname, content in files.items():
                with open(os.path.join(folder, fname), "w") as f:
                    f.write(content)
            if dotenv is not None:
                with open(os.path.join(folder, ".env"), "w") as f:
                    f.write(dotenv)
            count += 1
    print(f"{count} compose files")


if __name__ == "__main__":
    main()
