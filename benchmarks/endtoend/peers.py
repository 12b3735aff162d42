"""Virtualenvs for the peer tools, created by the runner with pip under a cache folder, one per tool.

A tool that cannot be installed (offline, no wheel, a binary it downloads at first start) is reported as
unavailable with the first line of the error, never dropped silently.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("HEADWATER_BENCH_CACHE", Path.home() / ".cache" / "headwater-bench")) / "venvs"


@dataclass(frozen=True)
class Peer:
    """A tool in a venv of its own: the pip requirement and where its executable lands."""

    name: str
    requirement: str
    executable: str  # relative to the venv; a glob when the wheel ships a binary in site-packages


PEERS = {
    # ingestr 1.0.x carries its Go binary in the wheel; later versions download it on first run.
    "ingestr": Peer("ingestr", "ingestr>=1.0,<1.1", "bin/ingestr"),
    "sling": Peer("sling", "sling-linux-amd64", "lib/python*/site-packages/sling_linux_amd64/bin/sling-linux-amd64"),
    "tap-postgres": Peer("tap-postgres", "meltanolabs-tap-postgres", "bin/tap-postgres"),
    "target-postgres": Peer("target-postgres", "meltanolabs-target-postgres", "bin/target-postgres"),
    "tap-mysql": Peer("tap-mysql", "pipelinewise-tap-mysql", "bin/tap-mysql"),
    "tap-csv": Peer("tap-csv", "tap-csv-folder", "bin/tap-csv-folder"),
    "tap-rest": Peer("tap-rest", "tap-rest-api-msdk", "bin/tap-rest-api-msdk"),
}


class Unavailable(Exception):
    """The tool cannot run here; the message says why (the first line of the error)."""


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("WARNING")]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["(no output)"])[0][:200]


def executable(name: str) -> Path:
    """The tool's executable, installing its venv first when it is missing."""
    peer = PEERS[name]
    venv = CACHE / peer.name
    found = sorted(venv.glob(peer.executable))
    if found:
        return found[0]
    venv.parent.mkdir(parents=True, exist_ok=True)
    create = subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], capture_output=True, text=True)
    if create.returncode != 0:
        raise Unavailable(f"venv failed: {first_line(create.stderr)}")
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", peer.requirement],
                             capture_output=True, text=True, timeout=900)
    found = sorted(venv.glob(peer.executable))
    if install.returncode != 0 or not found:
        raise Unavailable(f"pip install {peer.requirement} failed: {first_line(install.stderr or install.stdout)}")
    return found[0]


def installed_version(name: str) -> str:
    """The version pip installed of the tool's package, from its dist-info folder."""
    package = PEERS[name].requirement.split("<")[0].split(">")[0].split("=")[0].replace("-", "_")
    found = sorted((CACHE / name).glob(f"lib/python*/site-packages/{package}-*.dist-info"))
    return found[0].name.removesuffix(".dist-info").split("-", 1)[1] if found else "?"
