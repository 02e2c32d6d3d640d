"""Real fetches over HTTP on 127.0.0.1, DVC round trips, and Snakemake reruns (issue 3, item 5).

A throw-away git + DVC repository per test, a local-directory DVC remote, and a local HTTP
server serving fixture archives in the real Office-31 layout.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ghuda.data import data_version
from ghuda.data.fetch import verify_registered
from ghuda.data.fixtures import make_archives, make_recipe, make_tree

pytestmark = pytest.mark.slow  # subprocesses of dvc, snakemake and ghuda

ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def run(*cmd, cwd, check=True):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=ENV, capture_output=True,
                          text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def ghuda(*args, cwd, check=True):
    return run(sys.executable, "-m", "ghuda", "data", *args, cwd=cwd, check=check)


def dvc(*args, cwd, check=True):
    return run(sys.executable, "-m", "dvc", *args, cwd=cwd, check=check)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def end_headers(self):  # an ETag, as real servers send (DVC records it for imports)
        path = Path(self.translate_path(self.path))
        if path.is_file():
            st = path.stat()
            self.send_header("ETag", f'"{st.st_size:x}-{st.st_mtime_ns:x}"')
        super().end_headers()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL, recipe path) of Office-31 fixture archives served on 127.0.0.1."""
    top = tmp_path_factory.mktemp("served")
    counts, cc = make_tree("office31", top / "tree")
    archives = make_archives("office31", top / "tree", top / "www")
    handler = functools.partial(_QuietHandler, directory=str(top / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    recipe = make_recipe("office31", archives, counts, cc, base, top / "recipe.json")
    yield base, recipe
    server.shutdown()
    server.server_close()


@pytest.fixture
def repo(tmp_path):
    """A git + DVC repository with a local-directory default remote."""
    root = tmp_path / "repo"
    root.mkdir()
    run("git", "init", "-q", cwd=root)
    dvc("init", "-q", cwd=root)
    dvc("remote", "add", "-d", "team", tmp_path / "remote", cwd=root)
    return root


SNAKEFILE = """
from ghuda.data import data_version
MANIFEST = "data/office31/manifest.json"
rule with_ancient:
    input: ancient(MANIFEST)
    params: version=lambda w: data_version("office31", "data")
    output: "trained_ancient.txt"
    shell: "echo {params.version} > {output}"
rule plain:
    input: MANIFEST
    output: "trained_plain.txt"
    shell: "echo trained > {output}"
"""


def snakemake(cwd, *targets, dry=True):
    args = ["-n"] if dry else []
    return run(sys.executable, "-m", "snakemake", "--cores", "1", *args, *targets, cwd=cwd)


def test_fetch_push_get_pulls_and_snakemake_does_not_rerun(repo, served):
    _, recipe = served
    out = ghuda("fetch", "office31", "--root", repo / "data", "--recipe", recipe, cwd=repo)
    assert "tracked by DVC" in out.stdout
    assert (repo / "data" / "office31.dvc").is_file()
    assert "/office31" in (repo / "data" / ".gitignore").read_text()
    run("git", "add", "data/office31.dvc", "data/.gitignore", cwd=repo)
    run("git", "commit", "-qm", "office31", cwd=repo)
    dvc("push", "-q", cwd=repo)

    (repo / "Snakefile").write_text(SNAKEFILE)
    snakemake(repo, "trained_ancient.txt", "trained_plain.txt", dry=False)
    version = (repo / "trained_ancient.txt").read_text().strip()

    # another node: no data, no cache; the team remote has it
    shutil.rmtree(repo / "data" / "office31")
    shutil.rmtree(repo / ".dvc" / "cache")
    time.sleep(0.05)  # the pulled files get strictly newer timestamps
    out = ghuda("get", "office31", "--root", repo / "data", "--recipe", recipe, cwd=repo)
    assert "dvc pull" in out.stdout  # `ghuda data get` pulls from the team remote ...
    assert "downloading" not in out.stdout  # ... rather than downloading again
    assert "OK" in verify_registered("office31", repo / "data", recipe)
    manifest = repo / "data" / "office31" / "manifest.json"
    assert manifest.stat().st_mtime > (repo / "trained_ancient.txt").stat().st_mtime

    # with Snakemake's metadata at hand, neither rule reruns: it compares the checksum of a
    # small input whose timestamp changed (why the pipeline depends on the manifest, never on
    # the image files), and ancient() ignores the timestamp altogether
    both = snakemake(repo, "trained_ancient.txt", "trained_plain.txt").stdout
    assert "Nothing to be done" in both
    # a genuinely different dataset changes the version parameter, which does rerun
    original = manifest.read_text()
    manifest.write_text(original + "\n")
    assert re.search(r"rule with_ancient:", snakemake(repo, "trained_ancient.txt").stdout)
    manifest.write_text(original)
    # a fresh checkout has no .snakemake metadata: only ancient() still prevents retraining,
    # and the plain dependency shows that the pull really did rewrite the timestamp
    shutil.rmtree(repo / ".snakemake" / "metadata")
    dry = snakemake(repo, "trained_ancient.txt", "trained_plain.txt").stdout
    assert re.search(r"rule plain:", dry)
    assert not re.search(r"rule with_ancient:", dry)
    assert version == data_version("office31", repo / "data")


def test_dvc_import_url_then_register(repo, served):
    base, recipe = served
    archive = "domain_adaptation_images.tar.gz"
    (repo / "downloads").mkdir()
    dvc("import-url", f"{base}/{archive}", f"downloads/{archive}", cwd=repo)
    pointer = (repo / "downloads" / f"{archive}.dvc").read_text()
    assert f"{base}/{archive}" in pointer
    assert "frozen: true" in pointer  # a plain `dvc repro` never re-downloads
    ghuda("register", "office31", repo / "downloads", "--root", repo / "data",
          "--recipe", recipe, cwd=repo)
    assert "OK" in ghuda("verify", "office31", "--root", repo / "data", "--recipe", recipe,
                         cwd=repo).stdout
    dvc("push", "-q", cwd=repo)
    shutil.rmtree(repo / "data" / "office31")
    (repo / "downloads" / archive).unlink()
    shutil.rmtree(repo / ".dvc" / "cache")
    dvc("pull", "-q", cwd=repo)
    assert (repo / "downloads" / archive).is_file()
    assert "OK" in verify_registered("office31", repo / "data", recipe)


def _dead(recipe, tmp_path, url):
    raw = json.loads(Path(recipe).read_text())
    raw["archives"][0]["urls"] = [url]
    out = tmp_path / "dead.json"
    out.write_text(json.dumps(raw))
    return out


@pytest.mark.parametrize("kind", ["404", "closed-port"])
def test_dead_link_fails_loudly_then_manual_register_command_works(tmp_path, served, kind):
    base, recipe = served
    if kind == "404":
        url = f"{base}/no-such-file.tar.gz"
    else:
        import socket

        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{s.getsockname()[1]}/x.tar.gz"
    dead = _dead(recipe, tmp_path, url)
    root = tmp_path / "data"
    proc = ghuda("fetch", "office31", "--root", root, "--recipe", dead, "--no-dvc",
                 "--timeout", "5", cwd=tmp_path, check=False)
    assert proc.returncode == 1
    err = proc.stderr
    assert "could not download domain_adaptation_images.tar.gz" in err
    assert url in err
    folder = root / "downloads" / "office31"
    assert f"place them at:\n    {folder / 'domain_adaptation_images.tar.gz'}" in err
    assert not (root / "office31").exists()  # nothing reported as fetched
    assert not (root / "downloads").exists()  # no partial download, no empty folder left
    # the user downloads the file by hand and runs the one command the message gave
    folder.mkdir(parents=True)
    shutil.copy(Path(recipe).parent / "www" / "domain_adaptation_images.tar.gz", folder)
    command = re.search(r"then run:\n\s+(ghuda data register .*)", err).group(1)
    argv = [*shlex.split(command)[2:], "--no-dvc"]
    ghuda(*argv, cwd=tmp_path)
    assert "OK" in verify_registered("office31", root, dead)
