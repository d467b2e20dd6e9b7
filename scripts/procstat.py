"""Helpers shared by the load scripts (bench_load.py, scale_check.py): a free loopback port, a
process's CPU seconds and peak RSS from /proc, and HTTP GETs of the service's API."""

import json
import os
import secrets
import socket
import urllib.request

TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """User + system CPU seconds the process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_mb(pid):
    """The process's peak resident memory (VmHWM), MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# The service token the scripts give the dumpwatch they start (`api.token_env = TOKEN_ENV`, the
# environment of the process holding TOKEN): reads of the API need a caller.
TOKEN_ENV = "DW_SCRIPT_SERVICE_TOKEN"
TOKEN = secrets.token_hex(16)


def authorized(url):
    """A GET request of url with the service token."""
    return urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})


def get_text(url):
    """The body of a GET (with the service token), as text."""
    with urllib.request.urlopen(authorized(url), timeout=5) as r:
        return r.read().decode()


def get_json(url):
    """The body of a GET, parsed as JSON."""
    return json.loads(get_text(url))
