"""`skinfood serve` under load: dynamic batching on vs off, side by side, in one run.

    python benchmarks/serve.py [--quick] [--int8] [--json FILE] [--no-save]

A client process (this one) sends a fixed number of photos (640x480 JPEGs, a
224 px model) to a real server on 127.0.0.1 at concurrency 1, 4, 16 and 64,
each level capped in time, first with dynamic batching (--max-batch-size 16)
and then with --max-batch-size 1. It reports requests/s, p50/p95/p99 latency,
errors by status and the mean batch size (from /metrics), the cold start
(process start to ready), `skinfood predict` on a folder of the same photos,
a 1,000-request error check and the server's RSS after 200 and 2,000 requests.
With --int8 the server (and the predict baseline) run the model exported by
`skinfood export --format torchscript --int8` instead of the checkpoint.

The figures go to benchmarks/results/serve[-quick][-int8].json, with the
command, date and machine, and benchmarks/README.md is regenerated
(benchmarks/report.py); `--no-save` leaves both alone.

Bars (2-core CPU): at concurrency 16, batched >= 1.5x unbatched and >= 0.8x
`skinfood predict`; no error in 1,000 requests; RSS(2000) <= 1.1x RSS(200).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from run import log, make_photos, skinfood_predict, train_reference_model

LEVELS = (1, 4, 16, 64)
BARS = {
    "batched_vs_unbatched_c16": (">=", 1.5),
    "batched_vs_predict_c16": (">=", 0.8),
    "errors_in_1000": ("<=", 0),
    "rss_ratio_2000_vs_200": ("<=", 1.1),
}


class ServerProcess:
    def __init__(self, model: Path, env: dict, *args: str):
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "skinfood_cli",
                "serve",
                "--model",
                str(model),
                "--port",
                "0",
                "--no-access-log",
                *args,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        port = None
        for line in self.proc.stderr:
            m = re.search(r"listening on [\d.]+:(\d+)", line)
            if m:
                port = m.group(1)
                break
            if line.startswith("API docs"):
                break
        if port is None:
            raise RuntimeError("server did not start")
        self.cold_start = time.perf_counter() - started
        self.url = f"http://127.0.0.1:{port}"
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def batches(self) -> tuple[float, float]:
        import httpx

        text = httpx.get(f"{self.url}/metrics").text
        count = float(re.search(r"^skinfood_batch_size_count (\S+)$", text, re.M).group(1))
        total = float(re.search(r"^skinfood_batch_size_sum (\S+)$", text, re.M).group(1))
        return count, total

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(60)


def load(url: str, photos: list[bytes], n: int, concurrency: int, cap_s: float) -> dict:
    """Send up to `n` requests with `concurrency` in flight, stopping at `cap_s` seconds."""
    import httpx

    latencies, statuses = [], {}
    lock = threading.Lock()
    counter = iter(range(n))
    deadline = time.perf_counter() + cap_s

    def worker():
        with httpx.Client(timeout=60) as client:
            while time.perf_counter() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                t = time.perf_counter()
                try:
                    status = client.post(
                        f"{url}/v1/predict", content=photos[i % len(photos)], headers={"Content-Type": "image/jpeg"}
                    ).status_code
                except httpx.HTTPError:
                    status = "connection error"
                with lock:
                    latencies.append(time.perf_counter() - t)
                    statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(worker) for _ in range(concurrency)]:
            f.result()
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q):
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")

    ok = statuses.get(200, 0)
    return {
        "requests": len(latencies),
        "rps": ok / elapsed,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "errors": {str(k): v for k, v in statuses.items() if k != 200},
    }


def bench_server(model: Path, env: dict, photos: list[bytes], args: list[str], n: int, cap_s: float) -> dict:
    server = ServerProcess(model, env, *args)
    out = {"cold_start_s": server.cold_start, "levels": {}}
    try:
        load(server.url, photos, 16, 4, 30)  # warm the client and the server's paths
        for c in LEVELS:
            before = server.batches()
            row = load(server.url, photos, max(n, 2 * c), c, cap_s)
            after = server.batches()
            row["mean_batch"] = (after[1] - before[1]) / max(1.0, after[0] - before[0])
            out["levels"][c] = row
            log(
                f"  c={c:3d}: {row['rps']:.1f} req/s, p50 {row['p50_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms, "
                f"mean batch {row['mean_batch']:.1f}, errors {row['errors'] or 'none'}"
            )
    finally:
        server.stop()
    return out


def bench_endurance(model: Path, env: dict, photos: list[bytes], total: int) -> dict:
    """1,000 requests at concurrency 16 counted for errors; RSS after 200 and after `total`."""
    server = ServerProcess(model, env, "--max-batch-size", "16")
    try:
        first = load(server.url, photos, 200, 16, 600)
        rss_200 = server.rss_mb()
        rest = load(server.url, photos, total - 200, 16, 1200)
        rss_total = server.rss_mb()
    finally:
        server.stop()
    checked = first["requests"] + rest["requests"]
    errors = sum(first["errors"].values()) + sum(rest["errors"].values())
    return {
        "requests_checked": checked,
        "errors": errors,
        "rss_200_mb": rss_200,
        "rss_total_mb": rss_total,
        "total_requests": total,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests per level; ~5 minutes on 2 cores")
    parser.add_argument("--int8", action="store_true", help="serve the int8 TorchScript export of the model")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--no-save", action="store_true", help="do not write benchmarks/results/ nor regenerate benchmarks/README.md"
    )
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="skinfood-serve-bench-"))
    try:  # a failed or interrupted run must not leave its models and photos in /tmp
        return measure(args, work, argv if argv is not None else sys.argv[1:])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(args, work: Path, argv: list[str]) -> int:
    import report

    os.environ["SKINFOOD_HOME"] = str(work / "home")
    env = {**os.environ, "SKINFOOD_DEVICE": "cpu", "COLUMNS": "200"}
    started = time.perf_counter()
    log("training a reference model (96 px, from scratch; run at 224 px)")
    model = train_reference_model(work)
    if args.int8:
        from skinfood_cli.export import export_model

        log("exporting it to int8 TorchScript (PyTorch's x86 kernels)")
        model = export_model(
            model,
            fmt="torchscript",
            int8=True,
            output=work / "bench.int8.torchscript",
            calibration_images=100,
            verify_images=32,
        ).path
    paths = make_photos(work / "photos", 64)
    photos = [Path(p).read_bytes() for p in paths]
    n, cap = (48, 45.0) if args.quick else (200, 120.0)
    results: dict = {"quick": args.quick, "model": model.name, "requests_per_level": n, "cap_s": cap}

    log("skinfood predict on a folder of the same photos")
    _, results["predict_ips"] = skinfood_predict(model, paths)
    log(f"  {results['predict_ips']:.1f} img/s")
    log("batched server (--max-batch-size 16 --batch-timeout-ms 5)")
    results["batched"] = bench_server(model, env, photos, ["--max-batch-size", "16"], n, cap)
    log("unbatched server (--max-batch-size 1)")
    results["unbatched"] = bench_server(model, env, photos, ["--max-batch-size", "1"], n, cap)
    total = 1000 if args.quick else 2000
    log(f"endurance: {total} requests at concurrency 16")
    results["endurance"] = bench_endurance(model, env, photos, total)

    b16, u16 = results["batched"]["levels"][16]["rps"], results["unbatched"]["levels"][16]["rps"]
    e = results["endurance"]
    results.update(
        batched_vs_unbatched_c16=b16 / u16,
        batched_vs_predict_c16=b16 / results["predict_ips"],
        errors_in_1000=e["errors"],
        rss_ratio_2000_vs_200=e["rss_total_mb"] / e["rss_200_mb"],
    )
    results["seconds"] = time.perf_counter() - started
    print_table(results)
    results["run"] = report.provenance("serve", argv)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    if not args.no_save:
        saved = report.save(report.result_name("serve", args.quick, "int8" if args.int8 else None), results)
        log(f"figures in {saved}; benchmarks/README.md regenerated")
    failed = [k for k, (op, bar) in BARS.items() if not (results[k] >= bar if op == ">=" else results[k] <= bar)]
    return 1 if failed else 0


def print_table(r: dict) -> None:
    print(
        f"{'concurrency':>11} | {'batched req/s':>13} {'p50':>6} {'p95':>6} {'p99':>6} {'batch':>5} {'errors':>6} | "
        f"{'unbatched req/s':>15} {'p50':>6} {'p95':>6} {'p99':>6} {'errors':>6} | ratio"
    )
    for c in LEVELS:
        b, u = r["batched"]["levels"][c], r["unbatched"]["levels"][c]
        print(
            f"{c:>11} | {b['rps']:>13.1f} {b['p50_ms']:>6.0f} {b['p95_ms']:>6.0f} {b['p99_ms']:>6.0f} "
            f"{b['mean_batch']:>5.1f} {sum(b['errors'].values()):>6} | {u['rps']:>15.1f} {u['p50_ms']:>6.0f} "
            f"{u['p95_ms']:>6.0f} {u['p99_ms']:>6.0f} {sum(u['errors'].values()):>6} | {b['rps'] / u['rps']:.2f}x"
        )
    e = r["endurance"]
    print(
        f"latency in ms. cold start (process start to ready): batched {r['batched']['cold_start_s']:.1f} s, "
        f"unbatched {r['unbatched']['cold_start_s']:.1f} s"
    )
    print(f"skinfood predict on the same photos: {r['predict_ips']:.1f} img/s")
    rows = [
        ("batched / unbatched at c=16", r["batched_vs_unbatched_c16"], "batched_vs_unbatched_c16"),
        ("batched at c=16 / skinfood predict", r["batched_vs_predict_c16"], "batched_vs_predict_c16"),
        (f"errors in {e['requests_checked']} requests", r["errors_in_1000"], "errors_in_1000"),
        (
            f"RSS after {e['total_requests']} / after 200 requests ({e['rss_total_mb']:.0f} / "
            f"{e['rss_200_mb']:.0f} MB)",
            r["rss_ratio_2000_vs_200"],
            "rss_ratio_2000_vs_200",
        ),
    ]
    for name, value, key in rows:
        op, bar = BARS[key]
        ok = value >= bar if op == ">=" else value <= bar
        print(f"{name:60} {value:>8.2f} {op}{bar:<5} {'yes' if ok else 'NO'}")
    print(f"({r['seconds']:.0f} s in all)")


if __name__ == "__main__":
    sys.exit(main())
