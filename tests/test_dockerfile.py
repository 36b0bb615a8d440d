"""The container for `skinfood serve`: the Dockerfile read as instructions, and the image run where Docker is.

Most machines that run the tests have no Docker engine, so the fast checks parse the
Dockerfile (continuations, exec and shell forms, ARG defaults) and .dockerignore (Docker's
own matching rules: `**`, `!`, the last match wins, a pattern that matches a folder takes
what is inside) instead of building. The build-and-run test runs only where `docker info`
answers.
"""

from __future__ import annotations

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
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

from skinfood_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".heic", ".heif", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


# --- reading the Dockerfile ---------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest of the (joined) line, ARGs substituted
    exec_form: list[str] | None  # the JSON array of the exec form, if that is the form


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order: comments dropped, `\\` continuations joined, ${ARG} defaults substituted."""
    assert "# escape=" not in text.lower(), "this reader knows the default escape character only"
    logical, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue  # comment lines are removed even inside a continuation, as Docker does
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation"
    args: dict[str, str] = {}
    out = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), _substitute(rest.strip(), args)
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip().strip('"')
        exec_form = None
        if rest.startswith("["):
            try:
                exec_form = json.loads(rest)
            except ValueError:
                exec_form = None
        out.append(Instruction(keyword, rest, exec_form))
    return out


def _substitute(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), text)


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    start = max(i for i, ins in enumerate(instructions) if ins.keyword == "FROM")
    return instructions[start:]


def only(stage: list[Instruction], keyword: str) -> Instruction:
    found = [ins for ins in stage if ins.keyword == keyword]
    assert found, f"the Dockerfile has no {keyword}"
    return found[-1]  # Docker uses the last one


def as_argv(ins: Instruction) -> list[str]:
    return ins.exec_form if ins.exec_form is not None else ["/bin/sh", "-c", ins.args]


def option(argv: list[str], *names: str) -> str | None:
    """The value of the last `--name VALUE` or `--name=VALUE` in argv (click keeps the last)."""
    value = None
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                value = argv[i + 1]
            elif arg.startswith(name + "="):
                value = arg.split("=", 1)[1]
    return value


@pytest.fixture(scope="module")
def stage() -> list[Instruction]:
    return final_stage(parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def serve_argv(stage) -> list[str]:
    """What the container runs by default: ENTRYPOINT followed by CMD (both in exec form)."""
    entry, cmd = only(stage, "ENTRYPOINT"), only(stage, "CMD")
    assert entry.exec_form is not None and cmd.exec_form is not None, "exec form, so SIGTERM reaches skinfood"
    return entry.exec_form + cmd.exec_form


def served_port(argv: list[str]) -> int:
    return int(option(argv, "--port", "-p") or 8000)


# --- the fast checks ----------------------------------------------------------------------------


def test_the_reader_understands_continuations_forms_and_args():
    text = 'ARG PORT=9000\nFROM x\n# a comment\nRUN a \\\n    # inside\n    && b\nCMD ["serve", "--port", "${PORT}"]\n'
    ins = parse_dockerfile(text)
    assert [i.keyword for i in ins] == ["ARG", "FROM", "RUN", "CMD"]
    assert ins[2].args.split() == ["a", "&&", "b"]
    assert ins[3].exec_form == ["serve", "--port", "9000"]


def test_it_runs_skinfood_serve_on_all_interfaces_with_the_mounted_model(serve_argv):
    assert serve_argv[:2] == ["skinfood", "serve"], serve_argv
    assert option(serve_argv, "--host") == "0.0.0.0", serve_argv
    model = option(serve_argv, "--model", "-m")
    assert model is not None and (model == "/models" or model.startswith("/models/")), serve_argv
    # Every option it passes is one `skinfood serve --help` knows.
    serve = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    known = {o for p in serve.params for o in (*p.opts, *getattr(p, "secondary_opts", ()))}
    assert {a.split("=")[0] for a in serve_argv[2:] if a.startswith("-")} <= known


def test_it_exposes_the_port_it_serves_on(stage, serve_argv):
    exposed = {int(p.split("/")[0]) for ins in stage if ins.keyword == "EXPOSE" for p in ins.args.split()}
    assert served_port(serve_argv) in exposed


def test_the_healthcheck_probes_healthz_on_that_port_with_python(stage, serve_argv):
    _, found, command = only(stage, "HEALTHCHECK").args.partition("CMD")
    assert found, "HEALTHCHECK NONE, or no CMD"
    command = command.strip()
    argv = json.loads(command) if command.startswith("[") else ["/bin/sh", "-c", command]
    joined = " ".join(argv)
    port = served_port(serve_argv)
    assert re.search(rf"//(127\.0\.0\.1|localhost):{port}/healthz\b", joined), joined
    installs = " ".join(ins.args for ins in stage if ins.keyword == "RUN")
    assert "curl" not in joined or re.search(r"apt-get install[^&;]*\bcurl\b", installs), "curl without installing it"
    assert argv[:2] == ["python", "-c"], "python's urllib, which the image has"
    _check_probe_exit_codes(argv[2], port)


def _check_probe_exit_codes(code: str, port: int) -> None:
    """The probe's own Python, pointed at a local server: exit 0 when /healthz says 200, else not 0."""
    status = {"code": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status["code"] if self.path == "/healthz" else 404)
            self.end_headers()
            self.wfile.write(b'{"status": "ok"}')

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    local = code.replace(f":{port}/", f":{server.server_port}/")
    try:
        assert subprocess.run([sys.executable, "-c", local], capture_output=True, timeout=30).returncode == 0
        status["code"] = 503
        assert subprocess.run([sys.executable, "-c", local], capture_output=True, timeout=30).returncode != 0
    finally:
        server.shutdown()
        server.server_close()


def test_it_does_not_run_as_root(stage):
    users = [i for i, ins in enumerate(stage) if ins.keyword == "USER"]
    assert users, "no USER: the server would run as root"
    user = stage[users[-1]].args.split(":")[0]
    assert user not in ("root", "0"), user
    start = max(i for i, ins in enumerate(stage) if ins.keyword in ("ENTRYPOINT", "CMD"))
    assert users[-1] < start
    if not user.isdigit():  # a name must exist in the image: made by a RUN before USER
        made = " ".join(ins.args for ins in stage[: users[-1]] if ins.keyword == "RUN")
        assert re.search(rf"\b(useradd|adduser)\b[^&;]*\b{re.escape(user)}\b", made), made


def test_it_installs_the_project_with_its_serve_extra_from_the_copied_source(stage):
    pip = [ins.args for ins in stage if ins.keyword == "RUN" and "pip install" in ins.args]
    extras = [m.group(1) for args in pip for m in re.finditer(r"""["']?\.\[([\w,-]+)\]["']?""", args)]
    assert extras and "serve" in extras[-1].split(","), pip
    copied = {src.rstrip("/") for src, _ in _copies(stage)}
    assert {"pyproject.toml", "skinfood_cli", "descriptions"} <= copied, copied
    assert not [ins for ins in stage if ins.keyword == "ADD"], "COPY, not ADD (no URLs, no archives unpacked)"


def _copies(stage: list[Instruction]) -> list[tuple[str, str]]:
    """(source, destination) of each COPY from the build context (not from another stage)."""
    pairs = []
    for ins in stage:
        if ins.keyword != "COPY":
            continue
        words = ins.exec_form if ins.exec_form is not None else shlex.split(ins.args)
        flags = [w for w in words if w.startswith("--")]
        if any(f.startswith("--from") for f in flags):
            continue
        paths = [w for w in words if not w.startswith("--")]
        pairs += [(src, paths[-1]) for src in paths[:-1]]
    return pairs


# --- .dockerignore ------------------------------------------------------------------------------


def read_dockerignore(text: str) -> list[tuple[re.Pattern, bool]]:
    """(pattern, excludes) pairs as Docker (moby/patternmatcher) reads them."""
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line[1:] if negate else line).lstrip("/")
        rules.append((re.compile(_glob_to_regex(pattern)), not negate))
    return rules


def _glob_to_regex(pattern: str) -> str:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + "[" + pattern[i + 1 : end].replace("!", "^", 1) + "]", end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


def in_context(path: str, rules) -> bool:
    """Whether the build context holds `path` (relative, with /): the last rule that matches it decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]  # the path and its parent folders
    excluded = False
    for regex, excludes in rules:
        if any(regex.fullmatch(c) for c in candidates):
            excluded = excludes
    return not excluded


@pytest.fixture(scope="module")
def rules():
    return read_dockerignore(DOCKERIGNORE.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        "runs/20260101-120000/best.pt",
        "skinfood_cli/runs/x/last.pt",
        "photos/mole.jpg",
        "dermnet/train/Eczema Photos/1.jpeg",
        "skinfood_cli/IMG_0001.HEIC",
        "descriptions/photo.JPG",
        "skinfood_cli/__pycache__/paths.cpython-312.pyc",
        "skinfood.egg-info/PKG-INFO",
        "tests/conftest.py",
        "benchmarks/results.json",
    ],
)
def test_dockerignore_keeps_out(path, rules):
    assert not in_context(path, rules)


def test_the_context_holds_every_file_the_package_installs(rules):
    missing = []
    for top in ("skinfood_cli", "descriptions"):
        for folder, dirs, files in os.walk(ROOT / top):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                rel = (Path(folder) / name).relative_to(ROOT).as_posix()
                needed = Path(name).suffix in (".py", ".yaml", ".otf", ".txt", ".html", ".css", ".js")
                if needed and not in_context(rel, rules):
                    missing.append(rel)
    assert not missing, f".dockerignore keeps out files the image needs: {missing}"
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        assert in_context(name, rules), name


def test_the_reader_follows_dockers_matching_rules():
    rules = read_dockerignore("*\n!keep/\n**/*.png\n!keep/logo.png\n")
    assert not in_context("a.txt", rules) and not in_context("deep/a/b.txt", rules)
    assert in_context("keep/a/b.txt", rules)
    assert not in_context("keep/x.png", rules) and in_context("keep/logo.png", rules)


def test_nothing_copied_is_something_dockerignore_should_keep_out(stage, rules):
    for src, _ in _copies(stage):
        assert not src.startswith(("/", "..")) and "://" not in src, src
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
        assert in_context(src.rstrip("/"), rules), f"COPY {src}: .dockerignore keeps it out, the build would fail"
        files = [ROOT / src] if (ROOT / src).is_file() else sorted((ROOT / src).rglob("*"))
        for file in files:
            rel = file.relative_to(ROOT).as_posix()
            if not file.is_file() or not in_context(rel, rules):
                continue
            parts = set(rel.split("/"))
            assert not parts & {".venv", ".git", "runs"}, rel
            assert file.suffix.lower() not in PHOTO_SUFFIXES | {".pt", ".onnx"}, f"COPY {src} would copy {rel}"


# --- built and run, where there is a Docker engine ----------------------------------------------


def _docker_unavailable() -> str | None:
    if not shutil.which("docker"):
        return "no docker command on this machine"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`docker info` failed: {exc}"
    if info.returncode != 0:
        return "`docker info` failed: no Docker engine answers"
    return None


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_the_image_builds_starts_and_turns_healthy(small_data, tmp_path):
    reason = _docker_unavailable()
    if reason:
        pytest.skip(reason)
    from skinfood_cli.training import TrainConfig, train

    run = train(
        TrainConfig(
            data=str(small_data),
            name="boxed",
            epochs=1,
            image_size=32,
            batch_size=8,
            pretrained=False,
            device="cpu",
            precision="fp32",
        )
    )
    models = tmp_path / "models"  # readable by the image's own unprivileged user
    models.mkdir(mode=0o755)
    shutil.copy(run.best_path, models / "best.pt")
    os.chmod(models, 0o755)
    os.chmod(models / "best.pt", 0o644)
    tag = f"skinfood-serve-test:{uuid.uuid4().hex[:8]}"
    name = f"skinfood-serve-test-{uuid.uuid4().hex[:8]}"
    build = subprocess.run(["docker", "build", "-t", tag, str(ROOT)], capture_output=True, text=True, timeout=3000)
    assert build.returncode == 0, build.stderr[-4000:]
    try:
        user = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Config.User}}", tag], capture_output=True, text=True
        ).stdout.strip()
        assert user and user.split(":")[0] not in ("root", "0"), user
        started = subprocess.run(
            ["docker", "run", "-d", "--name", name, "-p", "127.0.0.1::8000", "-e", "SKINFOOD_TOKEN=t0ken"]
            + ["-v", f"{models}:/models:ro", tag],
            capture_output=True,
            text=True,
        )
        assert started.returncode == 0, started.stderr
        mapped = subprocess.run(["docker", "port", name, "8000/tcp"], capture_output=True, text=True).stdout
        port = int(mapped.split()[0].rsplit(":", 1)[1])
        deadline, health = time.time() + 240, ""
        while time.time() < deadline and health != "healthy":
            time.sleep(3)
            health = subprocess.run(
                ["docker", "inspect", "--format", "{{.State.Health.Status}}", name], capture_output=True, text=True
            ).stdout.strip()
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
        assert health == "healthy", logs.stdout[-2000:] + logs.stderr[-2000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as r:
            assert r.status == 200
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/model", timeout=10)
        assert denied.value.code == 401
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/model", headers={"Authorization": "Bearer t0ken"})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert json.loads(r.read())["classes"] == ["acne", "psoriasis", "vitiligo"]
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
