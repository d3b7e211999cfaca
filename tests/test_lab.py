"""`make lab` serves the repository root, opens chapter 00, and switches JupyterLab's news pop-up off.

The test takes the exact `jupyter lab` command line from the Makefile, starts that server on
127.0.0.1 (a free port, a random token, no browser, Jupyter's user directories redirected to a
temporary folder), queries its REST API and stops it.
"""

import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from conftest import ROOT

pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (pip install -e '.[course]')")


def _makefile_lab_command() -> list[str]:
    """The arguments `make lab` passes to `jupyter lab`, as the Makefile states them."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dry = subprocess.run(["make", "--no-print-directory", "-n", "lab", "STAMP=", f"BIN={os.path.dirname(sys.executable)}"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    lines = [ln for ln in dry.splitlines() if " lab " in ln and "jupyter" in ln]
    assert len(lines) == 1, dry
    args = shlex.split(lines[0])
    return [a for a in args[2:] if a != "--allow-root"]       # drop ".../jupyter lab"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str):
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read().decode())


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    args = _makefile_lab_command()
    home = tmp_path_factory.mktemp("jupyter-home")
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(home / "user-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces")}
    cmd = [sys.executable, "-m", "jupyterlab", *args, "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}"]
    if hasattr(os, "getuid") and os.getuid() == 0:
        cmd.append("--allow-root")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{proc.stdout.read()}")
            try:
                _get(f"{base}/api/status", token)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail("jupyter lab did not answer within 90 s")
                time.sleep(0.5)
        yield base, token, args
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_serves_the_repository_root(lab_server):
    base, token, _ = lab_server
    root = _get(f"{base}/api/contents", token)
    names = {item["name"] for item in root["content"] if item["type"] == "directory"}
    assert {"course", "exercises", "solutions"} <= names, names
    exercises = {item["name"] for item in _get(f"{base}/api/contents/exercises", token)["content"]}
    assert "01_minimax_games.ipynb" in exercises


def test_opens_chapter_00(lab_server):
    _, _, args = lab_server
    assert args[-1] == "course/00_start_here.ipynb"
    assert (ROOT / args[-1]).is_file()


def test_news_popup_is_switched_off(lab_server):
    base, token, _ = lab_server
    setting = _get(f"{base}/lab/api/settings/@jupyterlab/apputils-extension:notification", token)
    # the project's overrides.json replaces the schema default "none" (ask with a pop-up) by "false" (never)
    assert setting["schema"]["properties"]["fetchNews"]["default"] == "false"
    assert setting["schema"]["properties"]["checkForUpdates"]["default"] is False
