"""`skinfood serve`: a real server in a subprocess on 127.0.0.1, driven over real HTTP.

Each server is started with --port 0 and announces the port it got, so tests never
race for a free port. The session model (96 px) answers in a few milliseconds.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import parse_json
from PIL import Image

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

pytestmark = pytest.mark.slow
RECORD_KEYS = {
    "path",
    "label",
    "disease_name",
    "confidence",
    "uncertain",
    "top_k",
    "description",
    "urgency",
    "advice",
    "error",
    "in_scope",
    "scope_score",
    "prediction_set",
    "notice",
    "quality",
}


class Server:
    """`skinfood serve ...` in a subprocess; stderr collected; the URL parsed from its ready line."""

    def __init__(self, model: Path, home: Path, *args: str, host: str = "127.0.0.1"):
        env = {**os.environ, "SKINFOOD_HOME": str(home), "SKINFOOD_DEVICE": "cpu", "COLUMNS": "200"}
        env.pop("SKINFOOD_TOKEN", None)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "skinfood_cli",
                "serve",
                "--model",
                str(model),
                "--host",
                host,
                "--port",
                "0",
                *args,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(180):
            self.stop()
            raise AssertionError("server never became ready:\n" + "".join(self.lines))
        port = re.search(r"listening on [\d.]+:(\d+)", self.stderr).group(1)
        self.url = f"http://{host}:{port}"

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)
            if line.startswith("API docs"):  # the last line of the announcement
                self.ready.set()

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def stop(self, sig=signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def _start(request, *args, host="127.0.0.1"):
    trained = request.getfixturevalue("trained")
    home = request.getfixturevalue("tmp_path_factory").mktemp("serve-home")
    server = Server(trained.best_path, home, *args, host=host)
    request.addfinalizer(server.stop)
    return server


@pytest.fixture(scope="module")
def server(request):
    """fp32, so its records can be compared with the CLI's; a 2 MB upload limit to test 413 cheaply."""
    return _start(
        request, "--precision", "fp32", "--max-batch-size", "8", "--batch-timeout-ms", "50", "--max-upload-mb", "2"
    )


@pytest.fixture(scope="module")
def photos(dataset) -> list[Path]:
    return sorted((dataset / "test").rglob("*.jpg"))


def _post(url, path: Path, **kwargs):
    with open(path, "rb") as f:
        return httpx.post(url, files={"file": (path.name, f, "image/jpeg")}, timeout=60, **kwargs)


def _batch_stats(server) -> tuple[int, float]:
    text = httpx.get(f"{server.url}/metrics").text
    count = float(re.search(r"^skinfood_batch_size_count (\S+)$", text, re.M).group(1))
    total = float(re.search(r"^skinfood_batch_size_sum (\S+)$", text, re.M).group(1))
    return int(count), total


def test_health_ready_model_and_openapi(server):
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/readyz").json() == {"status": "ready"}
    info = httpx.get(f"{server.url}/v1/model").json()
    assert info["classes"] == ["acne", "psoriasis", "vitiligo"] and info["image_size"] == 96
    assert info["precision"] == "fp32" and info["batching"]["max_batch_size"] == 8
    assert "val_macro_f1" in info["metrics"]
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert {
        "/v1/predict",
        "/v1/explain",
        "/v1/diseases",
        "/v1/diseases/{name}",
        "/v1/model",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert "swagger" in httpx.get(f"{server.url}/docs").text.lower()


def test_predict_record_equals_the_clis(server, photos, cli, model_path):
    photo = photos[0]
    answer = _post(f"{server.url}/v1/predict", photo)
    assert answer.status_code == 200
    record = answer.json()
    assert set(record) == RECORD_KEYS | {"model", "latency_ms"}
    assert record["model"] == model_path.parent.name and record["latency_ms"] > 0
    [expected] = parse_json(
        cli("predict", photo, "--model", model_path, "--precision", "fp32", "--format", "json").stdout
    )
    for key in RECORD_KEYS - {"path", "confidence", "top_k", "scope_score"}:
        assert record[key] == expected[key], key
    assert record["scope_score"] == pytest.approx(expected["scope_score"], abs=1e-4)
    assert record["path"] == photo.name
    assert record["confidence"] == pytest.approx(expected["confidence"], abs=1e-5)
    assert [a["label"] for a in record["top_k"]] == [a["label"] for a in expected["top_k"]]

    raw = httpx.post(
        f"{server.url}/v1/predict",
        content=photo.read_bytes(),
        headers={"Content-Type": "image/jpeg"},
        params={"lang": "ko", "top_k": 1},
    )
    assert raw.status_code == 200
    assert raw.json()["label"] == record["label"] and len(raw.json()["top_k"]) == 1
    assert raw.json()["disease_name"] != record["disease_name"]  # Korean
    assert re.search("[가-힣]", raw.json()["description"])


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(server, photos, cli, model_path):
    sample = photos[::2]  # 12 photos, all three classes
    expected = {
        Path(r["path"]).name: r["label"]
        for r in parse_json(
            cli("predict", *sample, "--model", model_path, "--precision", "fp32", "--format", "json").stdout
        )
    }
    before_count, before_sum = _batch_stats(server)
    with concurrent.futures.ThreadPoolExecutor(len(sample)) as pool:
        answers = list(pool.map(lambda p: _post(f"{server.url}/v1/predict", p), sample))
    assert all(a.status_code == 200 for a in answers)
    assert {a.json()["path"]: a.json()["label"] for a in answers} == expected
    count, total = _batch_stats(server)
    assert total - before_sum == len(sample)
    assert count - before_count < len(sample), "concurrent requests should share forward passes"


def _non_skin_flagged(server, tmp_path) -> Path:
    """A generated non-skin picture the server flags out of scope."""
    from skinfood_cli.data.synthetic import make_non_skin

    for path in make_non_skin(tmp_path / "non-skin"):
        if _post(f"{server.url}/v1/predict", path).json()["in_scope"] is False:
            return path
    raise AssertionError("none of the generated non-skin pictures was flagged")


def test_out_of_scope_photo_answers_with_the_sentence_in_both_languages(server, tmp_path):
    from skinfood_cli.prediction import OUT_OF_SCOPE

    picture = _non_skin_flagged(server, tmp_path)
    for lang in ("en", "ko"):
        record = _post(f"{server.url}/v1/predict", picture, params={"lang": lang}).json()
        assert record["in_scope"] is False and record["description"] == OUT_OF_SCOPE[lang]
        assert record["top_k"] and record["prediction_set"] and record["scope_score"] < 0
        explained = _post(
            f"{server.url}/v1/explain", picture, params={"lang": lang}, headers={"Accept": "application/json"}
        ).json()
        assert explained["in_scope"] is False and explained["description"] == OUT_OF_SCOPE[lang]


def test_explain_returns_png_or_json(server, photos):
    png = _post(f"{server.url}/v1/explain", photos[0])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    picture = Image.open(io.BytesIO(png.content))
    assert picture.width >= 2 * 128  # photo | overlay
    as_json = _post(
        f"{server.url}/v1/explain", photos[0], headers={"Accept": "application/json"}, params={"lang": "ko"}
    )
    body = as_json.json()
    assert body["label"] == png.headers["x-skinfood-label"] and body["explained_label"] == body["label"]
    import base64

    assert base64.b64decode(body["image_png_base64"]).startswith(b"\x89PNG")


def test_descriptions_endpoints(server):
    listing = httpx.get(f"{server.url}/v1/diseases", params={"lang": "ko"}).json()
    assert any(d["key"] == "vitiligo" and d["name"] == "백반증" for d in listing)
    entry = httpx.get(f"{server.url}/v1/diseases/Eczema Photos").json()
    assert entry["key"] == "dermnet_eczema" and entry["summary"]
    missing = httpx.get(f"{server.url}/v1/diseases/no-such-thing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def _bomb_png() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, "PNG")  # ~50 kB claiming 400 megapixels
    return buf.getvalue()


def test_bad_uploads_get_their_status_and_the_server_keeps_serving(server, photos, tmp_path):
    url = f"{server.url}/v1/predict"
    good = photos[0].read_bytes()
    big = b"\xff\xd8" + os.urandom(int(2.5 * (1 << 20)))

    def chunked():  # no Content-Length: the limit must hold on the bytes actually streamed
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    cases = {
        "oversized with length": (413, lambda: httpx.post(url, content=big, headers={"Content-Type": "image/jpeg"})),
        "oversized, chunked": (413, lambda: httpx.post(url, content=chunked(), headers={"Content-Type": "image/jpeg"})),
        "text file": (415, lambda: httpx.post(url, files={"file": ("notes.txt", b"just text\n", "text/plain")})),
        "text body": (415, lambda: httpx.post(url, content=b"hello", headers={"Content-Type": "text/plain"})),
        "truncated jpeg": (
            422,
            lambda: httpx.post(url, files={"file": ("t.jpg", good[: len(good) // 2], "image/jpeg")}),
        ),
        "decompression bomb": (413, lambda: httpx.post(url, files={"file": ("bomb.png", _bomb_png(), "image/png")})),
        "empty body": (400, lambda: httpx.post(url, content=b"", headers={"Content-Type": "image/jpeg"})),
        "empty file": (400, lambda: httpx.post(url, files={"file": ("e.jpg", b"", "image/jpeg")})),
        "no file field": (400, lambda: httpx.post(url, files={"photo": ("a.jpg", good, "image/jpeg")})),
        "broken multipart": (
            400,
            lambda: httpx.post(
                url, content=b"--x\r\ngarbage", headers={"Content-Type": "multipart/form-data; boundary=x"}
            ),
        ),
        "bad lang": (
            400,
            lambda: httpx.post(url, params={"lang": "fr"}, content=good, headers={"Content-Type": "image/jpeg"}),
        ),
        "bad top_k": (
            400,
            lambda: httpx.post(url, params={"top_k": 0}, content=good, headers={"Content-Type": "image/jpeg"}),
        ),
    }
    for name, (status, send) in cases.items():
        answer = send()
        assert answer.status_code == status, (name, answer.status_code, answer.text)
        error = answer.json()["error"]
        assert error["code"] and error["message"] and "Traceback" not in answer.text, name
        assert _post(url, photos[0]).status_code == 200, f"server stopped serving after {name}"
    assert "Traceback" not in server.stderr


def test_metrics_count_requests_by_status(server):
    httpx.get(f"{server.url}/v1/diseases/nope")
    text = httpx.get(f"{server.url}/metrics").text
    assert re.search(r'skinfood_requests_total\{endpoint="/v1/diseases/\{name\}",status="404"\} [1-9]', text)
    assert "skinfood_request_latency_seconds_bucket" in text and "skinfood_queue_depth 0" in text


def test_token_is_required_and_checked(request, photos):
    server = _start(request, "--token", "s3cret")
    assert _post(f"{server.url}/v1/predict", photos[0]).status_code == 401
    wrong = _post(f"{server.url}/v1/predict", photos[0], headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert _post(f"{server.url}/v1/predict", photos[0], headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert httpx.get(f"{server.url}/healthz").status_code == 200  # probes need no token
    assert httpx.get(f"{server.url}/metrics").status_code == 401


def test_off_loopback_a_token_is_made_up_and_required(request, photos):
    # 127.0.0.2 is still this machine, but not the default loopback address: it
    # takes the "exposed" path (as 0.0.0.0 would) without opening a port to the network.
    server = _start(request, host="127.0.0.2")
    token = re.search(r"#token=(\S+)", server.stderr).group(1)
    assert _post(f"{server.url}/v1/predict", photos[0]).status_code == 401
    assert _post(f"{server.url}/v1/predict", photos[0], headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_full_queue_is_503_and_slow_requests_504(request, photos):
    server = _start(request, "--max-batch-size", "1", "--max-queue", "2", "--request-timeout", "0.05")
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda p: _post(f"{server.url}/v1/explain", p), photos[:16]))
    statuses = {a.status_code for a in answers}
    assert statuses <= {200, 503, 504} and {503, 504} <= statuses, statuses
    busy = next(a for a in answers if a.status_code == 503)
    assert busy.headers["retry-after"] == "1" and busy.json()["error"]["code"] == "busy"
    assert httpx.get(f"{server.url}/readyz").status_code == 200


def test_cors_is_off_unless_an_origin_is_named(server, request):
    headers = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in httpx.options(f"{server.url}/v1/predict", headers=headers).headers
    allowed = _start(request, "--cors-origin", "https://app.example.com")
    answer = httpx.options(f"{allowed.url}/v1/predict", headers=headers)
    assert answer.headers["access-control-allow-origin"] == "https://app.example.com"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_stop_signal_finishes_requests_in_flight_and_exits_0(request, photos, sig):
    server = _start(request, "--max-batch-size", "1")
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(_post, f"{server.url}/v1/explain", p) for p in photos[:6]]
        time.sleep(0.3)  # let them reach the server
        server.proc.send_signal(sig)
        answers = [f.result() for f in futures]
    assert [a.status_code for a in answers] == [200] * 6
    assert server.proc.wait(60) == 0
    assert "Traceback" not in server.stderr


def test_serves_an_exported_onnx_model(request, server, photos, tmp_path):
    pytest.importorskip("onnxruntime")
    from skinfood_cli.export import export_model

    trained = request.getfixturevalue("trained")
    exported = export_model(trained.best_path, output=tmp_path / "m.onnx", verify_images=8)
    onnx_server = Server(exported.path, tmp_path / "home")
    request.addfinalizer(onnx_server.stop)
    info = httpx.get(f"{onnx_server.url}/v1/model").json()
    assert info["backend"] == "onnx" and info["classes"] == ["acne", "psoriasis", "vitiligo"]
    for photo in photos[::6]:
        a, b = _post(f"{server.url}/v1/predict", photo).json(), _post(f"{onnx_server.url}/v1/predict", photo).json()
        assert a["label"] == b["label"] and a["confidence"] == pytest.approx(b["confidence"], abs=1e-4)
    explain = _post(f"{onnx_server.url}/v1/explain", photos[0])
    assert explain.status_code == 501 and "PyTorch checkpoint" in explain.json()["error"]["message"]


def test_serves_an_int8_torchscript_model(request, server, photos, tmp_path):
    from skinfood_cli.export import export_model

    trained = request.getfixturevalue("trained")
    exported = export_model(
        trained.best_path,
        fmt="torchscript",
        int8=True,
        output=tmp_path / "m.int8.torchscript",
        calibration_images=48,
        verify_images=8,
    )
    assert exported.verification.passed
    int8_server = Server(exported.path, tmp_path / "home")
    request.addfinalizer(int8_server.stop)
    info = httpx.get(f"{int8_server.url}/v1/model").json()
    assert info["backend"] == "torchscript" and info["precision"] == "int8"
    assert info["classes"] == ["acne", "psoriasis", "vitiligo"]
    labels = [
        (
            _post(f"{server.url}/v1/predict", p).json()["label"],
            _post(f"{int8_server.url}/v1/predict", p).json()["label"],
        )
        for p in photos[::4]
    ]
    assert sum(a == b for a, b in labels) >= len(labels) - 1
    explain = _post(f"{int8_server.url}/v1/explain", photos[0])
    assert explain.status_code == 501 and "torchscript" in explain.json()["error"]["message"]
    assert "Traceback" not in int8_server.stderr and "Warning" not in int8_server.stderr


def test_photos_are_never_written_to_disk(server):
    """A 1.5 MB upload (beyond multipart parsers' 1 MB spooling threshold) leaves no temp file."""
    import tempfile

    import numpy as np

    noise = np.random.default_rng(0).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "JPEG", quality=95)
    assert 1 << 20 < len(buf.getvalue()) < 2 << 20
    before = set(Path(tempfile.gettempdir()).iterdir())
    answer = httpx.post(
        f"{server.url}/v1/predict", files={"file": ("big.jpg", buf.getvalue(), "image/jpeg")}, timeout=60
    )
    assert answer.status_code == 200
    assert set(Path(tempfile.gettempdir()).iterdir()) - before == set()


def test_schemathesis_finds_no_server_error(server, tmp_path):
    """Property-based run of the OpenAPI schema, bounded in examples and time."""
    cli = Path(sys.executable).with_name("schemathesis")
    if not cli.exists():
        pytest.skip("schemathesis is not installed")
    result = subprocess.run(
        [
            str(cli),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "15",
            "--seed",
            "7",
            "--generation-database",
            "none",
            "--request-timeout",
            "30",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:]


def test_bad_model_and_taken_port_exit_2_with_one_line(tmp_path, trained):
    import socket

    env = {**os.environ, "SKINFOOD_HOME": str(tmp_path)}
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    result = subprocess.run(
        [sys.executable, "-m", "skinfood_cli", "serve", "--model", str(bad), "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "skinfood_cli", "serve", "--model", str(trained.best_path), "--port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
        )
    assert result.returncode == 2 and "cannot listen" in result.stderr and "Traceback" not in result.stderr


def test_without_the_extra_serve_names_the_install_line(cli, monkeypatch, model_path):
    monkeypatch.setitem(sys.modules, "fastapi", None)
    result = cli("serve", "--model", model_path)
    assert result.exit_code == 2 and 'pip install ".[serve]"' in result.stderr


def test_json_error_shape_for_unknown_routes(server):
    answer = httpx.get(f"{server.url}/no/such/route")
    assert answer.status_code == 404 and json.loads(answer.text)["error"]["code"] == "not_found"


# --- the page, in a real browser ------------------------------------------------------


def _wait_state(driver, state: str, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: d.execute_script("return document.body.dataset.state") == state)


def test_page_classifies_a_chosen_photo_and_switches_to_korean(server, browser, dataset, tmp_path):
    from selenium.webdriver.common.by import By

    photo = next(
        p
        for p in sorted((dataset / "test" / "vitiligo").glob("*.jpg"))
        if _post(f"{server.url}/v1/predict", p).json()["in_scope"]
    )
    expected = _post(f"{server.url}/v1/predict", photo).json()
    browser.get(f"{server.url}/")
    _wait_state(browser, "idle")
    browser.find_element(By.ID, "file").send_keys(str(photo))
    _wait_state(browser, "result")
    text = lambda element_id: browser.find_element(By.ID, element_id).text  # noqa: E731
    assert text("disease-name") == expected["disease_name"] == "Vitiligo"
    assert text("description") == expected["description"]
    assert text("confidence") == f"{round(expected['confidence'] * 100)}%"
    assert "Not a diagnosis" in text("not-diagnosis")

    browser.find_element(By.ID, "lang-ko").click()
    korean = _post(f"{server.url}/v1/predict", photo, params={"lang": "ko"}).json()
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "disease-name").text == korean["disease_name"])
    _wait_state(browser, "result")
    assert text("disease-name") == "백반증" and text("description") == korean["description"]
    assert browser.execute_script("return document.documentElement.lang") == "ko"

    browser.find_element(By.ID, "explain").click()
    WebDriverWait(browser, 60).until(
        lambda d: d.execute_script(
            "const h = document.getElementById('heatmap');"
            "return h.complete && h.naturalWidth > 0 && !h.closest('[hidden]')"
        )
    )

    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo\n")
    browser.find_element(By.ID, "file").send_keys(str(notes))
    _wait_state(browser, "error")
    assert browser.find_element(By.ID, "error").is_displayed()


def test_heic_upload_is_classified_like_its_jpeg_twin(server, photos, tmp_path):
    from conftest import write_heic_twin

    for jpeg in photos[::8]:  # one a class
        heic = write_heic_twin(jpeg, tmp_path)
        a = _post(f"{server.url}/v1/predict", jpeg).json()
        with open(heic, "rb") as f:
            answer = httpx.post(f"{server.url}/v1/predict", files={"file": (heic.name, f, "image/heic")}, timeout=60)
        assert answer.status_code == 200, answer.text
        b = answer.json()
        assert b["label"] == a["label"] and b["confidence"] == pytest.approx(a["confidence"], abs=0.05)
    picture = httpx.post(
        f"{server.url}/v1/explain", content=heic.read_bytes(), headers={"Content-Type": "image/heic"}, timeout=60
    )
    assert picture.status_code == 200
    assert Image.open(io.BytesIO(picture.content)).width == 2 * 128  # upright: 128 wide, stored 96 wide


def test_explain_picture_in_korean_carries_the_caption(server, photos):
    from skinfood_cli.explanation import build_caption, render_caption

    answer = _post(
        f"{server.url}/v1/explain", photos[0], params={"lang": "ko"}, headers={"Accept": "application/json"}
    ).json()
    import base64

    picture = Image.open(io.BytesIO(base64.b64decode(answer["image_png_base64"]))).convert("RGB")
    band = render_caption(build_caption(answer, lang="ko"), picture.width)
    assert picture.height == 96 + band.height
    assert picture.crop((0, 96, picture.width, picture.height)).tobytes() == band.tobytes()


# --- the page's upload: shrunk in the browser, upright ----------------------------------

# Wraps the page's fetch to keep a copy (base64) of every photo it uploads.
CAPTURE_UPLOADS = """
window.__uploads = [];
const realFetch = window.fetch;
window.fetch = async (url, options) => {
  const body = options && options.body;
  if (body instanceof FormData && body.get('file')) {
    const bytes = new Uint8Array(await body.get('file').arrayBuffer());
    let text = '';
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    window.__uploads.push({url: String(url), name: body.get('file').name, b64: btoa(text)});
  }
  return realFetch(url, options);
};
"""


def _phone_photo(path: Path) -> Image.Image:
    """A 12-megapixel portrait photo stored sideways with EXIF orientation 6, as phones do; returns it upright."""
    import numpy as np

    rng = np.random.default_rng(3)
    h, w = 4032, 3024
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([150 + 60 * x / w, 110 + 40 * y / h, 90 + 30 * (x + y) / (w + h)], axis=-1)
    base[: h // 4, : w // 3] = (220, 40, 40)  # a red block top-left, so orientation shows
    upright = Image.fromarray(np.clip(base + rng.normal(0, 14, base.shape), 0, 255).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # turn 90° clockwise to show
    upright.transpose(Image.Transpose.ROTATE_90).save(path, "JPEG", quality=95, exif=exif.tobytes())
    return upright


def test_page_shrinks_a_large_photo_before_upload_and_keeps_it_upright(server, browser, tmp_path):
    import base64

    import numpy as np

    photo = tmp_path / "IMG_0001.jpg"
    upright = _phone_photo(photo)
    assert photo.stat().st_size > 2 << 20  # larger than the test server's --max-upload-mb 2
    assert _post(f"{server.url}/v1/predict", photo).status_code == 413  # so the original would be refused

    browser.get(f"{server.url}/")
    _wait_state(browser, "idle")
    browser.execute_script(CAPTURE_UPLOADS)
    from selenium.webdriver.common.by import By

    browser.find_element(By.ID, "file").send_keys(str(photo))
    _wait_state(browser, "result")
    [upload] = browser.execute_script("return window.__uploads")
    sent = base64.b64decode(upload["b64"])
    received = Image.open(io.BytesIO(sent))
    assert received.format == "JPEG" and received.size == (1200, 1600)  # longest side 1600, portrait
    assert upload["name"] == "IMG_0001.jpg" and len(sent) < photo.stat().st_size / 4
    assert received.getexif().get(0x0112, 1) == 1  # the pixels themselves stand upright
    shown = np.asarray(received.convert("RGB"), dtype=np.float32)
    expected = np.asarray(upright.resize((1200, 1600), Image.BILINEAR), dtype=np.float32)
    assert np.abs(shown - expected).mean() < 8
    turned = np.asarray(upright.transpose(Image.Transpose.ROTATE_180).resize((1200, 1600)), dtype=np.float32)
    assert np.abs(shown - turned).mean() > 20

    expected_record = httpx.post(f"{server.url}/v1/predict", files={"file": ("x.jpg", sent, "image/jpeg")}).json()
    assert browser.find_element(By.ID, "disease-name").text == expected_record["disease_name"]


def test_page_leads_with_the_out_of_scope_sentence_in_both_languages(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from skinfood_cli.prediction import OUT_OF_SCOPE

    picture = _non_skin_flagged(server, tmp_path)
    browser.get(f"{server.url}/")
    _wait_state(browser, "idle")
    browser.find_element(By.ID, "file").send_keys(str(picture))
    _wait_state(browser, "result")
    heading = browser.find_element(By.ID, "disease-name")
    assert heading.text == OUT_OF_SCOPE["en"]
    assert not browser.find_element(By.ID, "description").is_displayed()
    assert not browser.find_element(By.ID, "most-likely").is_displayed()
    assert "not an answer" in browser.find_element(By.ID, "closest").text
    browser.find_element(By.ID, "lang-ko").click()
    WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "disease-name").text == OUT_OF_SCOPE["ko"])
    assert "답이 아닙니다" in browser.find_element(By.ID, "closest").text


def test_page_shows_the_photo_quality_hint_under_the_answer(server, browser, tmp_path):
    import numpy as np
    from selenium.webdriver.common.by import By

    dark = tmp_path / "dark.jpg"
    pixels = np.random.default_rng(0).normal(25, 12, (480, 640, 3))  # a dim, grainy photo
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(dark, quality=92)
    assert "dark" in _post(f"{server.url}/v1/predict", dark).json()["quality"]
    browser.get(f"{server.url}/")
    _wait_state(browser, "idle")
    browser.find_element(By.ID, "file").send_keys(str(dark))
    _wait_state(browser, "result")
    hint = browser.find_element(By.ID, "quality-hint")
    assert hint.is_displayed() and hint.text.startswith("Photo quality: too dark")
