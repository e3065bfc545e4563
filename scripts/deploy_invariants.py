#!/usr/bin/env python3
"""Checks that the deployment files describe the binaries as they are.

Usage: deploy_invariants.py BIN_DIR RENDERED_DIR

RENDERED_DIR holds one `<overlay>.yaml` per kustomize overlay (`kubectl kustomize` output).
BIN_DIR holds the built binaries: each one's `--help` lists the variables it reads and its
default listen address, which is the truth the manifests are checked against.

Checked, for every overlay and for deploy/compose.yaml and the Dockerfiles:
- ib-host: exactly one replica, strategy Recreate; data: one replica (one writer);
- every variable given to a container is one its binary reads (`--help`), none misspelt;
- KTRDR_LISTEN_ADDR listens on 0.0.0.0 and the binary's own port; the container port named
  `grpc`, the native gRPC liveness/readiness probes and the Service all use that port; readiness
  names a gRPC service the binary serves;
- KTRDR_METRICS_ADDR (default: the gRPC port + 1000) is the container port named `metrics` and
  the pod's prometheus.io/port scrape annotation;
- *_SERVICE_URL point at a Service (and port) that selects the right workload, the training
  hosts' Service is headless; IB_HOST/IB_PORT reach ib-sim's TWS port (dev) or are the only
  egress the NetworkPolicies give ib-host (prod);
- only the gateway (and, for data, the training hosts) may reach the host services;
- restrictive securityContext, resource requests and limits, Secrets and PVCs that exist;
- the gpu overlay requests nvidia.com/gpu with a node selector and a toleration;
- the training hosts are a StatefulSet whose serviceName is their headless Service, and each pod
  keeps its sessions in a directory of its own (KTRDR_SESSIONS_DIR holds $(POD_NAME), POD_NAME
  is the pod's metadata.name, defined before it) on a mounted volume; every other service is a
  Deployment; a $(VAR) in any value names a variable defined earlier in the list (Kubernetes
  leaves it unexpanded otherwise).
Exit code 1 and one line per violation when anything does not hold.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import yaml

ROOT = Path(__file__).resolve().parent.parent

# binary → (gRPC port, the API services it serves; see tests/src/lib.rs SERVICE_BINARIES)
BINARIES = {
    "ktrdr-gateway": (
        50051,
        {"ktrdr.gateway.v1.GatewayService", "ktrdr.data.v1.DataService", "ktrdr.training.v1.TrainingService"},
    ),
    "ktrdr-ib-host": (50052, {"ktrdr.ib.v1.IbHostService"}),
    "ktrdr-training-host": (50053, {"ktrdr.training.v1.TrainingService"}),
    "ktrdr-data": (50054, {"ktrdr.data.v1.DataService"}),
    "ktrdr-ib-sim": (50055, {"ktrdr.ib.v1.IbSimService"}),
}

# URL variable → the binary its Service must select.
URL_VARS = {
    "IB_HOST_SERVICE_URL": "ktrdr-ib-host",
    "DATA_SERVICE_URL": "ktrdr-data",
    "TRAINING_HOST_SERVICE_URL": "ktrdr-training-host",
}

# The metrics port is the gRPC port + this unless KTRDR_METRICS_ADDR says otherwise (see --help).
METRICS_OFFSET = 1000

# Variables the manifests set ahead of the code that reads them: name → why. Reported, not failed.
PENDING: dict[str, str] = {}

# The binaries that keep per-host state and so run as a StatefulSet; every other one is a
# Deployment.
STATEFUL = {"ktrdr-training-host"}

errors: list[str] = []
notes: list[str] = []


def fail(where: str, message: str) -> None:
    errors.append(f"{where}: {message}")


# ---- what the binaries read ---------------------------------------------------------------------


def binary_vars(bin_dir: Path) -> dict[str, dict[str, str]]:
    """binary → {variable: default} from its `--help`."""
    out = {}
    for binary in BINARIES:
        path = bin_dir / binary
        if not path.is_file():
            sys.exit(f"{path} not found: build the binaries first (cargo build --bins) or set BIN_DIR")
        help_text = subprocess.run([str(path), "--help"], capture_output=True, text=True, check=True).stdout
        section = help_text.split("Environment variables", 1)[-1]
        found = {}
        for line in section.splitlines():
            m = re.match(r"^  ([A-Z][A-Z0-9_]*)\s+(.*)$", line)
            if m:
                default = re.search(r"\[default: ([^\]]*)\]", m.group(2))
                found[m.group(1)] = default.group(1) if default else ""
        if "KTRDR_LISTEN_ADDR" not in found:
            sys.exit(f"{binary} --help lists no KTRDR_LISTEN_ADDR; cannot check against it")
        if f"port + {METRICS_OFFSET}" not in found.get("KTRDR_METRICS_ADDR", ""):
            fail(binary, f"--help no longer documents the metrics default as the gRPC port + {METRICS_OFFSET}")
        port = int(found["KTRDR_LISTEN_ADDR"].rsplit(":", 1)[1])
        if port != BINARIES[binary][0]:
            fail(binary, f"--help says it listens on port {port}, this check expects {BINARIES[binary][0]}")
        out[binary] = found
    return out


def check_var(where: str, binary: str, name: str, reads: dict[str, dict[str, str]]) -> None:
    if name in reads[binary]:
        return
    if name in PENDING:
        notes.append(f"{where}: {name} is not read by {binary} yet ({PENDING[name]})")
        return
    fail(where, f"{name} is not a variable {binary} reads (see `{binary} --help`)")


def metrics_port(where: str, env: dict, binary: str) -> int | None:
    """The metrics port a container's environment gives `binary` (None: off)."""
    value = env.get("KTRDR_METRICS_ADDR")
    if value is None:
        return BINARIES[binary][0] + METRICS_OFFSET
    if value.lower() == "off":
        return None
    host, _, port = value.rpartition(":")
    if host != "0.0.0.0" or not port.isdigit():
        fail(where, f"KTRDR_METRICS_ADDR={value}: containers must serve metrics on 0.0.0.0:PORT")
        return None
    return int(port)


def listen_port(where: str, value: str, binary: str) -> int | None:
    host, _, port = value.rpartition(":")
    if host != "0.0.0.0":
        fail(where, f"KTRDR_LISTEN_ADDR={value}: containers must listen on 0.0.0.0")
    if not port.isdigit():
        fail(where, f"KTRDR_LISTEN_ADDR={value} has no port")
        return None
    if int(port) != BINARIES[binary][0]:
        fail(where, f"KTRDR_LISTEN_ADDR={value}: {binary}'s port is {BINARIES[binary][0]}")
    return int(port)


# ---- Kubernetes ---------------------------------------------------------------------------------


class Rendered:
    def __init__(self, name: str, docs: list[dict]):
        self.name = name
        self.docs = [d for d in docs if d]
        self.by_kind: dict[str, dict[str, dict]] = {}
        for d in self.docs:
            self.by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d

    def kind(self, kind: str) -> dict[str, dict]:
        return self.by_kind.get(kind, {})


def container_env(r: Rendered, container: dict) -> dict[str, str | None]:
    """Variable → literal value (None when it comes from a Secret)."""
    env: dict[str, str | None] = {}
    for src in container.get("envFrom", []):
        cm = src.get("configMapRef", {}).get("name")
        if cm is not None:
            if cm not in r.kind("ConfigMap"):
                fail(r.name, f"envFrom names ConfigMap {cm}, which is not in the output")
                continue
            env.update(r.kind("ConfigMap")[cm].get("data", {}))
        if "secretRef" in src:
            fail(r.name, "envFrom secretRef hides which variables a container gets; use secretKeyRef")
    for var in container.get("env", []):
        ref = var.get("valueFrom", {})
        if "configMapKeyRef" in ref:
            cm, key = ref["configMapKeyRef"]["name"], ref["configMapKeyRef"]["key"]
            data = r.kind("ConfigMap").get(cm, {}).get("data", {})
            if key not in data and not ref["configMapKeyRef"].get("optional"):
                fail(r.name, f"{var['name']} reads key {key} of ConfigMap {cm}, which does not exist")
            env[var["name"]] = data.get(key)
        elif "secretKeyRef" in ref:
            secret = ref["secretKeyRef"]["name"]
            if secret in r.kind("Secret"):
                if ref["secretKeyRef"]["key"] not in r.kind("Secret")[secret].get("data", {}):
                    fail(r.name, f"{var['name']} reads a key Secret {secret} lacks")
            elif r.name == "dev":
                fail(r.name, f"{var['name']} reads Secret {secret}, which dev does not generate")
            else:
                notes.append(f"{r.name}: Secret {secret} must be created before applying (see the overlay)")
            env[var["name"]] = None
        elif "fieldRef" in ref:
            # The downward API: known only in the pod; keep the field path for the checks.
            env[var["name"]] = f"<fieldRef:{ref['fieldRef']['fieldPath']}>"
        else:
            env[var["name"]] = var.get("value")
    return env


def expansion_refs(value: str | None) -> list[str]:
    """The $(VAR) references Kubernetes expands in an env value ($$( escapes one)."""
    if not value:
        return []
    return re.findall(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)", value)


def check_expansions(where: str, container: dict) -> set[str]:
    """Every $(VAR) names a variable defined earlier in `env`; returns the names referenced."""
    defined: set[str] = set()
    referenced: set[str] = set()
    for var in container.get("env", []):
        for ref in expansion_refs(var.get("value")):
            referenced.add(ref)
            if ref not in defined:
                fail(where, f"{var['name']} uses $({ref}) but {ref} is not defined before it (left unexpanded)")
        defined.add(var["name"])
    return referenced


def service_port(r: Rendered, host: str, port: int) -> tuple[dict, dict] | None:
    svc = r.kind("Service").get(host)
    if svc is None:
        return None
    for p in svc["spec"]["ports"]:
        if p["port"] == port:
            return svc, p
    return None


def workloads(r: Rendered) -> dict[str, dict]:
    """Deployments and StatefulSets by name."""
    return {**r.kind("Deployment"), **r.kind("StatefulSet")}


def selected_workload(r: Rendered, svc: dict) -> str | None:
    selector = svc["spec"].get("selector", {})
    for name, dep in workloads(r).items():
        labels = dep["spec"]["template"]["metadata"].get("labels", {})
        if selector and all(labels.get(k) == v for k, v in selector.items()):
            return name
    return None


def resolve_target_port(dep: dict, target) -> int | None:
    if isinstance(target, int):
        return target
    for c in dep["spec"]["template"]["spec"]["containers"]:
        for p in c.get("ports", []):
            if p.get("name") == target:
                return p["containerPort"]
    return None


def check_overlay(r: Rendered, reads: dict[str, dict[str, str]]) -> None:
    deps = workloads(r)
    for binary in ("ktrdr-gateway", "ktrdr-ib-host", "ktrdr-data", "ktrdr-training-host"):
        kind = "StatefulSet" if binary in STATEFUL else "Deployment"
        if binary not in r.kind(kind):
            fail(r.name, f"no {kind} {binary}")
    for name in set(r.kind("Deployment")) & STATEFUL:
        fail(r.name, f"{name} keeps per-host sessions: it must be a StatefulSet, not a Deployment")
    for name, sts in r.kind("StatefulSet").items():
        svc = r.kind("Service").get(sts["spec"].get("serviceName", ""))
        if svc is None or svc["spec"].get("clusterIP") != "None" or selected_workload(r, svc) != name:
            fail(r.name, f"StatefulSet {name}: serviceName must be the headless Service that selects it")
    if (r.name == "dev") != ("ktrdr-ib-sim" in deps):
        fail(r.name, "ib-sim runs in the dev overlay only")

    ib = deps.get("ktrdr-ib-host")
    if ib:
        if ib["spec"].get("replicas") != 1:
            fail(r.name, f"ktrdr-ib-host has {ib['spec'].get('replicas')} replicas; it must have exactly 1")
        if ib["spec"].get("strategy", {}).get("type") != "Recreate":
            fail(r.name, "ktrdr-ib-host must use strategy Recreate (never two IB connections)")
    data = deps.get("ktrdr-data")
    if data and data["spec"].get("replicas") != 1:
        fail(r.name, "ktrdr-data must have one replica (the only writer of the store)")

    for name, dep in deps.items():
        where = f"{r.name}/{name}"
        if name not in BINARIES:
            fail(where, "a workload that is not one of the ktrdr binaries")
            continue
        port, services = BINARIES[name]
        pod = dep["spec"]["template"]["spec"]
        psc = pod.get("securityContext", {})
        if not psc.get("runAsNonRoot") or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            fail(where, "pod securityContext needs runAsNonRoot and seccompProfile RuntimeDefault")
        if pod.get("automountServiceAccountToken") is not False:
            fail(where, "automountServiceAccountToken must be false (no service needs the API)")
        containers = pod["containers"]
        if len(containers) != 1:
            fail(where, "one container per pod expected")
        c = containers[0]
        if not c.get("image", "").startswith("ktrdr/"):
            fail(where, f"image {c.get('image')} is not a ktrdr image")
        sc = c.get("securityContext", {})
        if (
            sc.get("allowPrivilegeEscalation") is not False
            or sc.get("readOnlyRootFilesystem") is not True
            or "ALL" not in sc.get("capabilities", {}).get("drop", [])
        ):
            fail(where, "container securityContext must forbid privilege escalation, drop ALL, read-only root")
        res = c.get("resources", {})
        for part in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(res.get(part, {})):
                fail(where, f"resources.{part} needs cpu and memory")

        env = container_env(r, c)
        referenced = check_expansions(where, c)
        for var in env:
            # A downward-API variable that only feeds another's $(VAR) is the pod's, not the
            # binary's.
            if (env[var] or "").startswith("<fieldRef:") and var in referenced:
                continue
            check_var(where, name, var, reads)
        listen = env.get("KTRDR_LISTEN_ADDR")
        if listen is None:
            fail(where, "KTRDR_LISTEN_ADDR is not set (the default listens on loopback only)")
        else:
            listen_port(where, listen, name)
        ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        if ports.get("grpc") != port:
            fail(where, f"container port 'grpc' is {ports.get('grpc')}, {name} serves on {port}")
        mport = metrics_port(where, env, name)
        annotations = dep["spec"]["template"]["metadata"].get("annotations", {})
        if mport is not None:
            if ports.get("metrics") != mport:
                fail(where, f"container port 'metrics' is {ports.get('metrics')}, metrics are served on {mport}")
            if annotations.get("prometheus.io/scrape") != "true" or annotations.get("prometheus.io/port") != str(mport):
                fail(where, f"pod needs prometheus.io/scrape \"true\" and prometheus.io/port \"{mport}\"")
        for probe_kind in ("livenessProbe", "readinessProbe"):
            probe = c.get(probe_kind, {}).get("grpc")
            if probe is None:
                fail(where, f"{probe_kind} must be a native gRPC probe")
                continue
            if probe.get("port") != port:
                fail(where, f"{probe_kind} probes port {probe.get('port')}, {name} serves on {port}")
            svc_name = probe.get("service", "")
            if svc_name and svc_name not in services:
                fail(where, f"{probe_kind} checks {svc_name}, which {name} does not serve")

        for vol in pod.get("volumes", []):
            claim = vol.get("persistentVolumeClaim", {}).get("claimName")
            if claim and claim not in r.kind("PersistentVolumeClaim"):
                fail(where, f"volume {vol['name']} claims PVC {claim}, which is not in the output")
        mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
        for var in ("KTRDR_DATA_DIR", "KTRDR_MODELS_DIR"):
            if env.get(var) and env[var] not in mounts:
                fail(where, f"{var}={env[var]} is not a mounted volume (the root filesystem is read-only)")
        if name in STATEFUL:
            check_sessions_dir(where, env, mounts)

        if name == "ktrdr-gateway":
            for var, target in URL_VARS.items():
                check_url(r, where, var, env.get(var), target)
            if "KTRDR_AUTH_TOKEN" not in env:
                fail(where, "the gateway gets no KTRDR_AUTH_TOKEN")
        if name == "ktrdr-training-host":
            check_url(r, where, "DATA_SERVICE_URL", env.get("DATA_SERVICE_URL"), "ktrdr-data")
        if name == "ktrdr-ib-host":
            check_ib(r, where, env, deps)
        if name == "ktrdr-training-host" and r.name == "gpu":
            gpu = res.get("limits", {}).get("nvidia.com/gpu")
            if not gpu or res.get("requests", {}).get("nvidia.com/gpu") != gpu:
                fail(where, "the gpu overlay must request and limit nvidia.com/gpu")
            if not pod.get("nodeSelector") or not any(
                t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", [])
            ):
                fail(where, "the gpu overlay needs a GPU node selector and the nvidia.com/gpu toleration")

    for name, svc in r.kind("Service").items():
        where = f"{r.name}/service/{name}"
        dep_name = selected_workload(r, svc)
        if dep_name is None:
            fail(where, "selects no Deployment or StatefulSet")
            continue
        for p in svc["spec"]["ports"]:
            target = resolve_target_port(deps[dep_name], p.get("targetPort", p["port"]))
            if target is None:
                fail(where, f"targetPort {p.get('targetPort')} is not a port of {dep_name}")
            elif target != p["port"]:
                fail(where, f"port {p['port']} forwards to {target}; keep them equal (URLs use the port)")
    ths = r.kind("Service").get("ktrdr-training-host")
    if ths and ths["spec"].get("clusterIP") != "None":
        fail(r.name, "the training-host Service must be headless (clusterIP: None) so the gateway balances")

    check_network(r)


def check_sessions_dir(where: str, env: dict, mounts: set[str]) -> None:
    """Each training-host pod keeps its sessions apart: a host marks every unfinished session in
    its sessions directory INTERRUPTED at start, so a shared one lets hosts interrupt each other."""
    value = env.get("KTRDR_SESSIONS_DIR")
    if not value:
        fail(where, "KTRDR_SESSIONS_DIR is not set: every pod would share <models>/_sessions")
        return
    per_pod = [ref for ref in expansion_refs(value) if env.get(ref) == "<fieldRef:metadata.name>"]
    if not per_pod:
        fail(where, f"KTRDR_SESSIONS_DIR={value} is not per pod: it needs $(POD_NAME) with POD_NAME from metadata.name")
    if not any(value == m or value.startswith(m.rstrip("/") + "/") for m in mounts):
        fail(where, f"KTRDR_SESSIONS_DIR={value} is not on a mounted volume (the root filesystem is read-only)")


def check_url(r: Rendered, where: str, var: str, value: str | None, target: str) -> None:
    if not value:
        fail(where, f"{var} is not set")
        return
    for url in value.split(","):
        u = urlparse(url.strip())
        if u.scheme != "http" or not u.hostname or not u.port:
            fail(where, f"{var}={url}: expected http://SERVICE:PORT")
            continue
        found = service_port(r, u.hostname, u.port)
        if found is None:
            fail(where, f"{var}={url}: no Service {u.hostname} with port {u.port}")
            continue
        if selected_workload(r, found[0]) != target:
            fail(where, f"{var}={url}: Service {u.hostname} does not select {target}")


def check_ib(r: Rendered, where: str, env: dict, deps: dict) -> None:
    host, port = env.get("IB_HOST"), env.get("IB_PORT")
    if not host or not port:
        fail(where, "IB_HOST and IB_PORT must be set")
        return
    egress = [
        rule
        for pol in r.kind("NetworkPolicy").values()
        if pol["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "ktrdr-ib-host"
        for rule in pol["spec"].get("egress", [])
    ]
    if not egress:
        fail(where, "no NetworkPolicy lets ib-host reach IB")
    allowed_ports = {p["port"] for rule in egress for p in rule.get("ports", [])}
    if int(port) not in allowed_ports:
        fail(where, f"IB_PORT={port} is not a port ib-host may reach ({sorted(allowed_ports)})")
    if "ktrdr-ib-sim" in deps:
        found = service_port(r, host, int(port))
        if found is None or selected_workload(r, found[0]) != "ktrdr-ib-sim":
            fail(where, f"IB_HOST={host} IB_PORT={port} is not ib-sim's Service")
            return
        sim = deps["ktrdr-ib-sim"]["spec"]["template"]["spec"]["containers"][0]
        sim_addr = container_env(r, sim).get("IB_SIM_ADDR", "")
        target = resolve_target_port(deps["ktrdr-ib-sim"], found[1].get("targetPort"))
        if not sim_addr or int(sim_addr.rsplit(":", 1)[1]) != target or not sim_addr.startswith("0.0.0.0:"):
            fail(where, f"ib-sim listens for TWS clients on IB_SIM_ADDR={sim_addr}, the Service sends to {target}")
    else:
        blocks = [peer["ipBlock"]["cidr"] for rule in egress for peer in rule.get("to", []) if "ipBlock" in peer]
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            notes.append(f"{where}: IB_HOST={host} is a name; check the egress policy covers its address")
            return
        if not any(ip in ipaddress.ip_network(b) for b in blocks):
            fail(where, f"IB_HOST={host} is outside every ipBlock ib-host may reach ({blocks})")


def check_network(r: Rendered) -> None:
    pols = r.kind("NetworkPolicy")
    if not any(p["spec"]["podSelector"] == {} and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} for p in pols.values()):
        fail(r.name, "no default-deny NetworkPolicy (podSelector {}, Ingress and Egress)")
    may_call = {
        "ktrdr-ib-host": {"ktrdr-gateway"},
        "ktrdr-training-host": {"ktrdr-gateway"},
        "ktrdr-data": {"ktrdr-gateway", "ktrdr-training-host"},
        "ktrdr-ib-sim": {"ktrdr-ib-host"},
    }
    for target, callers in may_call.items():
        if target not in workloads(r):
            continue
        rules = [
            rule
            for p in pols.values()
            if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == target
            or p["spec"]["podSelector"] == {}
            for rule in p["spec"].get("ingress", [])
        ]
        metrics = BINARIES[target][0] + METRICS_OFFSET
        if not rules:
            fail(r.name, f"no ingress rule for {target}: nothing could call it")
        for rule in rules:
            peers = rule.get("from")
            rule_ports = rule.get("ports", [])
            if rule_ports and peers and all(
                p.get("port", 0) <= metrics <= p.get("endPort", p.get("port", 0))
                and not p.get("port", 0) <= BINARIES[target][0] <= p.get("endPort", p.get("port", 0))
                for p in rule_ports
            ) and all(set(peer) == {"namespaceSelector"} for peer in peers):
                continue  # Prometheus scraping the metrics port
            if not peers:
                fail(r.name, f"{target} accepts traffic from anywhere; only {sorted(callers)} may call it")
                continue
            for peer in peers:
                who = peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
                if who not in callers or "namespaceSelector" in peer or "ipBlock" in peer:
                    fail(r.name, f"{target} accepts traffic from {peer}; only {sorted(callers)} may call it")


# ---- compose and Dockerfiles ----------------------------------------------------------------------

COMPOSE_BINARY = {
    "gateway": "ktrdr-gateway",
    "ib-host": "ktrdr-ib-host",
    "data": "ktrdr-data",
    "training-host": "ktrdr-training-host",
    "ib-sim": "ktrdr-ib-sim",
}


def check_compose(reads: dict[str, dict[str, str]]) -> None:
    path = ROOT / "deploy" / "compose.yaml"
    compose = yaml.safe_load(path.read_text())
    services = compose["services"]
    for svc, binary in COMPOSE_BINARY.items():
        where = f"compose/{svc}"
        if svc not in services:
            fail(where, "missing")
            continue
        s = services[svc]
        env = {k: str(v) for k, v in s.get("environment", {}).items()}
        for var in env:
            check_var(where, binary, var, reads)
        port = listen_port(where, env.get("KTRDR_LISTEN_ADDR", ""), binary)
        mport = metrics_port(where, env, binary)
        if mport is not None and str(mport) not in [str(x) for x in s.get("expose", [])]:
            fail(where, f"does not expose its metrics port {mport}")
        health = " ".join(s.get("healthcheck", {}).get("test", []))
        if port and f"127.0.0.1:{port}" not in health:
            fail(where, f"the healthcheck does not probe port {port}")
        if s.get("build", {}).get("target") not in (svc, None):
            fail(where, f"builds target {s['build']['target']}, expected {svc}")
        for var, target in URL_VARS.items():
            if var in env:
                u = urlparse(env[var])
                want = [k for k, v in COMPOSE_BINARY.items() if v == target][0]
                if u.hostname != want or u.port != BINARIES[target][0]:
                    fail(where, f"{var}={env[var]}: expected http://{want}:{BINARIES[target][0]}")
        if svc == "ib-host":
            m = re.match(r"\$\{IB_HOST:-([^}]*)\}", env.get("IB_HOST", ""))
            p = re.match(r"\$\{IB_PORT:-([^}]*)\}", env.get("IB_PORT", ""))
            sim = services["ib-sim"]["environment"]["IB_SIM_ADDR"]
            if not m or m.group(1) != "ib-sim" or not p or p.group(1) != sim.rsplit(":", 1)[1]:
                fail(where, f"IB_HOST/IB_PORT must default to ib-sim's IB_SIM_ADDR ({sim})")


def dockerfile_stages(path: Path) -> dict[str, list[str]]:
    """Stage name → its instructions (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            current = m.group(1) or f"stage{len(stages)}"
            stages[current] = []
        elif current:
            stages[current].append(line)
    return stages


def check_dockerfiles() -> None:
    for file, targets in (
        ("Dockerfile", {"gateway", "ib-host", "data", "training-host", "ib-sim"}),
        ("Dockerfile.cuda", {"training-host-cuda"}),
    ):
        stages = dockerfile_stages(ROOT / "deploy" / file)
        for target in targets:
            where = f"deploy/{file}:{target}"
            if target not in stages:
                fail(where, "no such stage")
                continue
            chain = stages[target] + (stages.get("runtime", []) if file == "Dockerfile" else [])
            users = [line.split()[1] for line in chain if line.upper().startswith("USER ")]
            if not users or users[-1].split(":")[0] in ("0", "root"):
                fail(where, "must run as a non-root USER")
            binary = "ktrdr-training-host" if target == "training-host-cuda" else f"ktrdr-{target}"
            entry = [line for line in stages[target] if line.upper().startswith("ENTRYPOINT")]
            if not entry or binary not in entry[-1]:
                fail(where, f"ENTRYPOINT must run {binary}")
            listen = re.search(r"KTRDR_LISTEN_ADDR=(\S+)", " ".join(stages[target]))
            if not listen:
                fail(where, "sets no KTRDR_LISTEN_ADDR")
            else:
                port = listen_port(where, listen.group(1), binary)
                if port and not re.search(rf"EXPOSE\s.*\b{port}\b", "\n".join(stages[target])):
                    fail(where, f"does not EXPOSE {port}")
            metrics = re.search(r"KTRDR_METRICS_ADDR=(\S+)", " ".join(stages[target]))
            mport = metrics_port(where, {"KTRDR_METRICS_ADDR": metrics.group(1)} if metrics else {}, binary)
            if mport and not re.search(rf"EXPOSE\s.*\b{mport}\b", "\n".join(stages[target])):
                fail(where, f"does not EXPOSE its metrics port {mport}")


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    bin_dir, rendered_dir = Path(sys.argv[1]), Path(sys.argv[2])
    reads = binary_vars(bin_dir)
    overlays = sorted(rendered_dir.glob("*.yaml"))
    if not overlays:
        sys.exit(f"no rendered overlays in {rendered_dir}")
    for path in overlays:
        check_overlay(Rendered(path.stem, list(yaml.safe_load_all(path.read_text()))), reads)
    check_compose(reads)
    check_dockerfiles()
    for note in dict.fromkeys(notes):
        print(f"note: {note}")
    for error in errors:
        print(f"FAIL {error}")
    names = ", ".join(p.stem for p in overlays)
    if errors:
        print(f"deploy invariants: {len(errors)} violation(s) in {names}, compose, Dockerfiles")
        return 1
    print(f"deploy invariants hold for {names}, deploy/compose.yaml and the Dockerfiles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
