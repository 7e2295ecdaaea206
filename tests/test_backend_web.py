"""The web backend in a real headless Chromium: detection, the matrix's cells per provider,
generated tests, WebNN in the packaged Chromium, the run's shared browser, and a browser that
crashes or hangs.

Everything runs for real: Debian's ``/usr/bin/chromium`` (``make test`` installs it) through
Playwright, onnxruntime-web from the npm registry (fetched once into the session's cache, its
integrity checked) and, for WebNN, the Chromium that the npm package ``@sparticuz/chromium``
ships. Nothing else is downloaded. Each test that starts browsers marks their processes with an
environment variable of its own and checks that none of them outlives the run.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest

from conftest import ONE_THREAD, assert_generated_tests_skip, generate_and_run, hardware_rows
from hwaccel_web import npm
from hwaccel_web.chromium import CHROMIUM_ENV
from hwaccel_web.detect import detect_web

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason="Debian's chromium is not installed")
MARK = "HWACCEL_WEB_TEST_MARK"
FAST = ["--iterations", "2", "--warmup", "1", "--min-seconds", "0"]
# the web backend and the pipeline of tiny:bert only: detection and planning stay short
WEB_ONLY = {"HWACCEL_LOAD_PLUGINS": "web,hwaccel-pipeline-text"}
DEBIAN_WEBNN = "WebNN is not supported on this platform"


def _cmdline(process: psutil.Process | None) -> str:
    try:
        return " ".join(process.cmdline()) if process is not None else ""
    except psutil.Error:
        return ""


def browsers(mark: str) -> list[psutil.Process]:
    """The live Chromium processes started with ``MARK=mark`` in their environment, their
    crash handlers and every process they started (renderers have an environment of their
    own, so they are found as descendants)."""
    found: dict[int, psutil.Process] = {}
    for process in psutil.process_iter(["name"]):
        try:
            if "chrom" in process.name().lower() and process.environ().get(MARK) == mark:
                for member in (process, *process.children(recursive=True)):
                    if member.status() != psutil.STATUS_ZOMBIE:
                        found[member.pid] = member
        except psutil.Error:
            continue
    return list(found.values())


def run_marked(args: list[str], mark: str) -> subprocess.Popen[str]:
    """Start ``python -m hwaccel ARGS`` with the mark in its environment, loading only the
    web backend and the text pipeline."""
    return subprocess.Popen([sys.executable, "-m", "hwaccel", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **ONE_THREAD, **WEB_ONLY, MARK: mark})


def _gone(mark: str, timeout_s: float = 10.0) -> list[psutil.Process]:
    """The marked browser processes still alive once they had ``timeout_s`` to go."""
    deadline = time.monotonic() + timeout_s
    while browsers(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    return browsers(mark)


def _run_browser(mark: str) -> psutil.Process | None:
    """The main process of the marked run's browser (the one its keeper started)."""
    for process in browsers(mark):
        try:
            if "--type=" not in _cmdline(process) and \
                    "hwaccel_web.keeper" in _cmdline(process.parent()):
                return process
        except psutil.Error:
            continue
    return None


def _watch_run_browsers(mark: str, seen: set[int], done: threading.Event) -> None:
    """Note the pid of every run's browser the marked run starts, until ``done``."""
    while not done.is_set():
        main = _run_browser(mark)
        if main is not None:
            seen.add(main.pid)
        time.sleep(0.2)


@pytest.fixture(scope="session")
def ort_web():
    """onnxruntime-web fetched from the npm registry into the session's cache, once."""
    from hwaccel_web.ortweb import FOLDER_ENV, ort_web_dir

    if shutil.which("npm") is None and not os.environ.get(FOLDER_ENV):
        pytest.skip(f"npm is missing (make test installs it) and {FOLDER_ENV} is not set")

    return ort_web_dir()


@pytest.fixture(scope="session")
def packaged():
    """The WebNN-capable Chromium of @sparticuz/chromium, fetched into the session's cache."""
    from hwaccel_web.packaged import packaged_chromium

    if shutil.which("npm") is None:
        pytest.skip("npm is missing (make test installs it)")

    return packaged_chromium()


# -- npm packages: integrity and unpacking ------------------------------------------------------


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_a_tarball_that_does_not_match_its_pin_is_refused(tmp_path):
    tarball = _tarball(tmp_path / "p.tgz", {"package/dist/ort.min.mjs": b"export {}"})
    good = npm.integrity_of(tarball)
    assert good.startswith("sha512-")
    npm.verify(tarball, good)
    with pytest.raises(npm.NpmError, match="does not match its pinned integrity"):
        npm.verify(tarball, "sha512-" + "A" * 86 + "==")
    with pytest.raises(npm.NpmError, match="unsupported integrity algorithm"):
        npm.verify(tarball, "md5-abc")


def test_unpacking_keeps_wanted_files_and_refuses_paths_outside(tmp_path):
    tarball = _tarball(tmp_path / "p.tgz", {"package/dist/a.mjs": b"a", "package/b.md": b"b"})
    names = npm.extract(tarball, tmp_path / "out", lambda n: n.endswith(".mjs"))
    assert names == ["package/dist/a.mjs"]
    assert (tmp_path / "out/package/dist/a.mjs").read_bytes() == b"a"
    assert not (tmp_path / "out/package/b.md").exists()
    evil = _tarball(tmp_path / "evil.tgz", {"package/../../escaped.mjs": b"x"})
    with pytest.raises(npm.NpmError, match="outside its folder"):
        npm.extract(evil, tmp_path / "out2", lambda n: True)
    assert not (tmp_path / "escaped.mjs").exists()


@needs_chromium
def test_the_pinned_onnxruntime_web_is_in_the_cache_verified(ort_web):
    from hwaccel_web.ortweb import FILES, PINNED

    assert all((ort_web / name).is_file() for name in FILES)
    marker = json.loads((ort_web.parents[1] / npm.MARKER).read_text())
    assert marker == {"package": "onnxruntime-web", "version": PINNED.version,
                      "integrity": PINNED.integrity}


# -- detection ---------------------------------------------------------------------------------


@needs_chromium
def test_detect_reports_webgpu_webnn_and_wasm_from_debian_chromium(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "hwaccel", "detect", "--refresh", "--json"],
                          capture_output=True, text=True, timeout=180,
                          env={**os.environ, "HWACCEL_CACHE_DIR": str(tmp_path / "cache"),
                               "HWACCEL_DB": str(tmp_path / "db.duckdb"),
                               "HWACCEL_LOAD_PLUGINS": "web"})
    assert proc.returncode == 0, proc.stderr
    web = {h["device"]: h for h in json.loads(proc.stdout)["hardware"] if h["backend"] == "web"}
    assert list(web) == ["webgpu", "webnn", "wasm"]
    version = subprocess.run([str(CHROMIUM), "--version"], capture_output=True,
                             text=True).stdout.split()[1]
    gpu, nn, wasm = web["webgpu"], web["webnn"], web["wasm"]
    assert gpu["available"] and gpu["details"]["browser_version"] == version
    adapter = gpu["details"]["webgpu"]
    assert adapter["isFallbackAdapter"] is True and adapter["architecture"] == "swiftshader"
    assert "fallback adapter" in gpu["name"] and adapter["vendor"] in gpu["name"]
    assert adapter["limits"]["maxBufferSize"] > 0 and isinstance(adapter["features"], list)
    assert ("fp16" in gpu["capabilities"]) == ("shader-f16" in adapter["features"])
    assert not nn["available"] and DEBIAN_WEBNN in nn["reason"]
    contexts = nn["details"]["webnn"]["contexts"]
    assert sorted(contexts) == ["cpu", "gpu", "npu"]
    assert all(not c["ok"] and c["error"].startswith("NotSupportedError") for c in
               contexts.values())
    assert wasm["available"] and {"simd", "threads"} <= set(wasm["capabilities"])
    assert wasm["details"]["cross_origin_isolated"] is True
    assert {h["compute_resource"] for h in web.values()} == {"host-cpu"}
    # the ONNX export kept in the cache, with tied word embeddings stored twice
    assert gpu["converted_weights"] == "fp32" and gpu["converted_unties_weights"] is True


def test_without_a_browser_every_provider_is_absent_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setenv(CHROMIUM_ENV, str(tmp_path / "no-chromium"))
    infos = detect_web()
    assert [(i.device, i.available) for i in infos] == [
        ("webgpu", False), ("webnn", False), ("wasm", False)]
    assert {i.reason for i in infos} == {f"{CHROMIUM_ENV}={tmp_path / 'no-chromium'} does "
                                         "not exist"}
    plain = tmp_path / "chromium"
    plain.write_text("")
    monkeypatch.setenv(CHROMIUM_ENV, str(plain))
    assert detect_web()[0].reason == f"{CHROMIUM_ENV}={plain} is not executable"
    monkeypatch.delenv(CHROMIUM_ENV)
    monkeypatch.setattr("hwaccel_web.chromium.CANDIDATES", ())
    monkeypatch.setenv("PATH", str(tmp_path))
    assert detect_web()[0].reason.startswith("no Chromium or Chrome found")


def test_a_browser_that_fails_to_start_is_reported_with_its_output(monkeypatch, tmp_path):
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\necho 'cannot open display: this browser refuses' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv(CHROMIUM_ENV, str(fake))
    (gpu, nn, wasm) = detect_web()
    assert not (gpu.available or nn.available or wasm.available)
    assert gpu.reason == (f"{fake} could not be probed: {fake} exited with status 3 at start: "
                          "cannot open display: this browser refuses")


def test_generated_tests_skip_with_the_reason_when_there_is_no_browser(tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv(CHROMIUM_ENV, str(tmp_path / "none"))
    assert_generated_tests_skip("web", f"webgpu: unavailable — {CHROMIUM_ENV}=", tmp_path)


def _record(device: str, available: bool, reason: str | None = None):
    from hwaccel import HardwareInfo

    return HardwareInfo(backend="web", device=device, name=device, available=available,
                        reason=reason)


def test_the_fallback_chain_skips_absent_providers_with_their_reasons():
    from hwaccel.errors import UsageError
    from hwaccel_web.session import choose_provider

    infos = [_record("webgpu", False, "no adapter"), _record("webnn", False, "NotSupported"),
             _record("wasm", True)]
    assert choose_provider(infos) == (["wasm"], ["webgpu: unavailable — no adapter",
                                                 "webnn: unavailable — NotSupported"])
    assert choose_provider(infos, "webnn") == ([], ["webnn: unavailable — NotSupported"])
    assert choose_provider(infos[:2]) == ([], ["webgpu: unavailable — no adapter",
                                               "webnn: unavailable — NotSupported",
                                               "wasm: unavailable — not detected"])
    with pytest.raises(UsageError, match="unknown web provider 'webgl'"):
        choose_provider(infos, "webgl")


@needs_chromium
def test_a_session_the_browser_refuses_falls_back_to_the_next_provider(plugins, ort_web,
                                                                        one_thread):
    """Told WebNN is there, Debian's Chromium refuses the WebNN session: the chain goes on to
    WASM and says why, in the browser's words."""
    from conftest import workload_and_model
    from hwaccel_web.errors import WebProviderError
    from hwaccel_web.session import load_in_browser

    workload, model = workload_and_model("tiny:bert", plugins, prepare=True)
    hardware = [_record("webgpu", False, "not wanted here"), _record("webnn", True),
                _record("wasm", True)]
    with load_in_browser(model, workload, 1, 8, model_ref="tiny:bert",
                         hardware=hardware) as placed:
        assert placed.provider == "wasm"
        first, refused = placed.fallbacks
        assert first == "webgpu: unavailable — not wanted here"
        assert refused.startswith("webnn: session refused — onnxruntime-web could not create "
                                  "a webnn session: ") and "NotSupportedError" in refused
        inputs = workload.make_inputs(1, 8)
        got = workload.forward(placed, inputs)["logits"]
        assert placed.last_ms > 0
    expected = workload.forward(model, inputs)["logits"]
    assert (got - expected).abs().max().item() < 1e-4
    # named, the refused provider is the backend's failure, in the runtime's words
    with pytest.raises(WebProviderError, match="NotSupportedError") as refused_alone:
        load_in_browser(model, workload, 1, 8, model_ref="tiny:bert", provider="webnn",
                        hardware=hardware)
    assert refused_alone.value.category == "backend"


@needs_chromium
def test_named_outputs_read_as_attributes_like_the_torch_models(plugins, ort_web, one_thread):
    """A workload that reads ``outputs.logits`` (the multimodal one) runs on the web model
    as on the torch model, and their logits agree."""
    from conftest import workload_and_model
    from hwaccel_web.session import load_in_browser

    workload, model = workload_and_model("tiny:llava", plugins, prepare=True)
    inputs = workload.make_inputs(1, 8)
    with load_in_browser(model, workload, 1, 8, model_ref="tiny:llava",
                         provider="wasm") as placed:
        outputs = placed(**inputs, **dict(placed.signature.constants))
        assert outputs.logits is outputs["logits"]
        got = workload.forward(placed, inputs)["logits"]
    expected = workload.forward(model, inputs)["logits"]
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < 1e-4


# -- the matrix, benchmarks and generated tests in the browser -----------------------------------


@needs_chromium
def test_matrix_has_a_cell_per_provider_measured_in_the_page(tmp_path, ort_web):
    mark = uuid.uuid4().hex
    db = tmp_path / "m.duckdb"
    proc = run_marked(["matrix", "--models", "tiny:bert", "--backends", "web", "--db", str(db),
                       "--tests-dir", str(tmp_path / "tests"), "--json", *FAST], mark)
    seen: set[int] = set()
    done = threading.Event()
    watcher = threading.Thread(target=_watch_run_browsers, args=(mark, seen, done), daemon=True)
    watcher.start()
    try:
        out, err = proc.communicate(timeout=600)
    finally:
        proc.kill()
        done.set()
        watcher.join(timeout=5)
    assert proc.returncode == 0, err
    # four jobs (a generated test and a benchmark per provider), one browser
    assert len(seen) == 1, seen
    cells = {c["device"]: c for c in json.loads(out)["cells"]}
    assert sorted(cells) == ["wasm", "webgpu", "webnn"]
    assert cells["webnn"]["error_category"] == "unavailable"
    assert DEBIAN_WEBNN in cells["webnn"]["error"]
    for provider in ("webgpu", "wasm"):
        cell = cells[provider]
        assert cell["success"], cell["error"]
        assert cell["test_status"] == "passed" and cell["test_summary"] == "3 passed"
        details = cell["details"]
        assert details["timer"] == "performance.now" and details["provider"] == provider
        assert details["cross_origin_isolated"] is True and details["shared_browser"] is True
        assert details["browser_pid"] in seen
        memory = details["browser_memory"]
        assert memory["renderer_peak_mb"] > 0 and memory["gpu_peak_mb"] > 0
        assert details["helper_peak_rss_mb"] > memory["renderer_peak_mb"]
        assert cell["iterations"] >= 2 and 0 < cell["p50_ms"] <= cell["p99_ms"]
        assert cell["max_abs_diff"] is not None and cell["max_abs_diff"] < 1e-4
        assert cell["threads"] >= 1 and cell["peak_rss_mb"] > 0
    assert cells["webgpu"]["details"]["fallback_adapter"] is True
    assert sorted(p.name for p in (tmp_path / "tests").iterdir()) == [
        "test_hf_tiny_bert_web_wasm.py", "test_hf_tiny_bert_web_webgpu.py"]
    rows = {r["device"]: r for r in hardware_rows(db)}
    assert rows["wasm"]["p50_ms"] == pytest.approx(cells["wasm"]["p50_ms"])
    assert _gone(mark) == []


@needs_chromium
def test_the_generated_test_follows_the_provider_it_is_given(tmp_path, ort_web):
    run = generate_and_run(["tiny:bert"], tmp_path / "gen", backend="web",
                           env={**ONE_THREAD, "HWACCEL_DEVICE": "webnn"})
    skips = [line for line in run.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skips and all("web unavailable: webnn: unavailable — navigator.ml.createContext()"
                         in line and DEBIAN_WEBNN in line for line in skips), run.stdout


@needs_chromium
def test_webnn_runs_in_the_packaged_chromium(monkeypatch, packaged, ort_web, plugins,
                                             one_thread):
    from hwaccel import BenchmarkRequest, BenchmarkSettings
    from hwaccel.models.classify import classify
    from hwaccel_web.bench import run

    monkeypatch.setenv(CHROMIUM_ENV, str(packaged))
    infos = {i.device: i for i in detect_web()}
    webnn = infos["webnn"]
    assert webnn.available, webnn.reason
    assert webnn.capabilities == ("cpu", "gpu", "npu")
    assert all(c["ok"] for c in webnn.details["webnn"]["contexts"].values())
    assert webnn.details["browser_version"].startswith("153.")
    request = BenchmarkRequest(
        model="tiny:bert", hardware=webnn,
        classification=classify("tiny:bert", plugins).classification,
        settings=BenchmarkSettings(batch_size=1, seq_len=8, warmup=1, min_iterations=3,
                                   min_seconds=0))
    result = run(request)
    assert result.success, result.error
    assert result.details["provider"] == "webnn" and result.details["webnn_device_type"] == "cpu"
    assert result.details["timer"] == "performance.now" and result.iterations >= 3
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-4
    assert result.output_shapes["logits"][:2] == [1, 8]


# -- the run's shared browser ------------------------------------------------------------------


@pytest.fixture
def run_of_jobs(monkeypatch, tmp_path):
    """A stand-in for a run's job zygote (a sleeping process, the owner of the run's
    browser), a mark for the browser's processes, and a cache of the test's own."""
    mark = uuid.uuid4().hex
    monkeypatch.setenv(MARK, mark)
    monkeypatch.setenv("HWACCEL_CACHE_DIR", str(tmp_path / "cache"))
    owner = subprocess.Popen(["sleep", "600"])
    yield owner, mark
    owner.kill()
    owner.wait()
    assert _gone(mark) == []


def _page(owner: subprocess.Popen[bytes], timeout_s: float | None = None):
    from hwaccel_web.browser import Browser
    from hwaccel_web.shared import attach

    return Browser(timeout_s=timeout_s, host=attach(owner.pid, str(CHROMIUM)))


@needs_chromium
def test_the_jobs_of_a_run_share_its_browser(run_of_jobs):
    owner, mark = run_of_jobs
    with _page(owner) as first:
        assert first.evaluate("() => 6 * 7") == 42
        with _page(owner) as beside:  # two jobs at once: two contexts, one browser
            assert beside.pid == first.pid and beside.evaluate("() => 1") == 1
        peaks = first.page_peaks()
    assert peaks["renderer_peak_mb"] > 0 and peaks["gpu_peak_mb"] > 0
    assert peaks["page_peak_mb"] == peaks["renderer_peak_mb"] + peaks["gpu_peak_mb"]
    assert psutil.pid_exists(first.pid)  # closing its page leaves the run's browser running
    with _page(owner) as later:
        assert later.pid == first.pid and later.evaluate("() => 2") == 2


@needs_chromium
def test_the_runs_browser_stops_when_the_run_ends(run_of_jobs):
    from hwaccel_web.shared import state_dir

    owner, mark = run_of_jobs
    with _page(owner) as page:
        page.evaluate("() => 1")
    assert browsers(mark)  # kept for the run's next job
    owner.kill()
    owner.wait()
    assert _gone(mark, 5) == []
    deadline = time.monotonic() + 5
    while list(state_dir().iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(state_dir().iterdir()) == []  # nothing of the run is left in the cache


@needs_chromium
def test_the_runs_browser_stops_when_idle_and_the_next_job_starts_another(run_of_jobs,
                                                                         monkeypatch):
    from hwaccel_web.shared import state_dir

    owner, mark = run_of_jobs
    monkeypatch.setenv("HWACCEL_WEB_IDLE", "1")
    with _page(owner) as page:
        first = page.pid
        time.sleep(2)  # an open page keeps it, however long
        assert page.evaluate("() => 1") == 1
    assert _gone(mark) == []
    assert not list(state_dir().glob("*.json"))
    with _page(owner) as page:
        assert page.pid not in (None, first) and page.evaluate("() => 1") == 1


@needs_chromium
def test_a_crashed_shared_browser_fails_its_job_as_a_crash_and_is_replaced(run_of_jobs):
    from hwaccel_web.errors import BrowserCrash

    owner, mark = run_of_jobs
    with _page(owner) as page:
        crashed = page.pid
        os.kill(crashed, signal.SIGKILL)
        with pytest.raises(BrowserCrash, match="^the browser died of SIGKILL during a wait") \
                as met:
            page.evaluate("() => new Promise(resolve => setTimeout(resolve, 2000))",
                          what="a wait")
        assert met.value.category == "crash"
    with _page(owner) as page:
        assert page.pid not in (None, crashed) and page.evaluate("() => 1") == 1


@needs_chromium
def test_a_page_that_hangs_stops_the_runs_browser(run_of_jobs):
    from hwaccel_web.errors import BrowserHang

    owner, mark = run_of_jobs
    with _page(owner, timeout_s=3) as page:
        with pytest.raises(BrowserHang, match="within 3 s; killed it") as hung:
            page.evaluate("() => new Promise(() => {})", what="a promise that never settles")
        assert hung.value.category == "timeout"
        assert _gone(mark) == []


# -- a browser that crashes or hangs ----------------------------------------------------------


def _pages(main: psutil.Process) -> list[str]:
    """The URLs of the pages open in the browser, from its DevTools endpoint."""
    import urllib.request

    profile = next(arg.split("=", 1)[1] for arg in main.cmdline()
                   if arg.startswith("--user-data-dir="))
    port = (Path(profile) / "DevToolsActivePort").read_text().split()[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as answer:
        return [t["url"] for t in json.load(answer) if t["type"] == "page"]


def _crash_browser(mark: str, seen: list[str]) -> None:
    """Wait for a job's page (served from 127.0.0.1) in the marked run's browser, let it
    run a while, then SIGKILL the browser's main process."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        main = _run_browser(mark)
        try:
            served = main is not None and any(url.startswith("http://127.0.0.1:")
                                              for url in _pages(main))
        except (OSError, ValueError, StopIteration, psutil.Error):
            served = False
        if served:
            time.sleep(8)
            seen.append("browser-crash")
            try:
                main.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass
            return
        time.sleep(0.2)


@pytest.fixture
def page_browser(monkeypatch):
    """A marked browser on the backend's own page, with a 3 s limit per call."""
    from hwaccel_web.browser import Browser
    from hwaccel_web.detect import STATIC
    from hwaccel_web.server import PageServer

    mark = uuid.uuid4().hex
    monkeypatch.setenv(MARK, mark)
    with PageServer({"static": STATIC}) as server, Browser(str(CHROMIUM), timeout_s=3) as browser:
        browser.goto(server.url("static", "index.html"))
        assert browser.evaluate("() => 6 * 7") == 42
        yield browser, mark
    assert browsers(mark) == []


@needs_chromium
def test_the_browsers_detached_crash_handlers_write_into_its_profile(page_browser):
    """Chromium's crash handlers leave the browser's process tree; the backend gives them
    a database in the throwaway profile (nothing lands in the home directory), which is
    how it finds them to kill with the browser (the fixture checks that none survives)."""
    browser, mark = page_browser
    handlers = []
    for process in browsers(mark):
        try:  # a handler that detaches starts a short-lived one, which may be gone by now
            if "crashpad" in process.name():
                handlers.append((process.cmdline(), process.ppid()))
        except psutil.NoSuchProcess:
            continue
    assert handlers, "this Chromium starts no crash handler: the test checks nothing"
    for cmdline, parent in handlers:
        assert f"--database={browser.host.profile / 'Crash Reports'}" in cmdline
        assert parent != browser.pid


@needs_chromium
def test_a_page_that_hangs_is_killed_with_its_browser(page_browser):
    from hwaccel_web.browser import BrowserHang

    browser, mark = page_browser
    assert len(browsers(mark)) > 3  # the browser, its zygotes, GPU process, renderers
    started = time.monotonic()
    with pytest.raises(BrowserHang, match="gave no answer to a promise that never settles "
                                          "within 3 s; killed it"):
        browser.evaluate("() => new Promise(() => {})", what="a promise that never settles")
    assert time.monotonic() - started < 15
    assert browsers(mark) == []


@needs_chromium
def test_a_browser_that_dies_mid_call_is_a_crash(page_browser):
    from hwaccel_web.browser import BrowserCrash

    browser, mark = page_browser
    killer = threading.Timer(1.0, os.kill, (browser.pid, signal.SIGKILL))
    killer.start()
    with pytest.raises(BrowserCrash, match="the browser died of SIGKILL during a long call"):
        browser.evaluate("() => new Promise(resolve => setTimeout(resolve, 2500))",
                         what="a long call")
    killer.join()
    browser.close()
    assert browsers(mark) == []


@needs_chromium
def test_a_browser_dies_with_the_process_that_started_it(tmp_path):
    mark = uuid.uuid4().hex
    script = ("import sys, time\nfrom hwaccel_web.browser import Browser\n"
              f"b = Browser({str(CHROMIUM)!r})\nprint(b.pid, flush=True)\ntime.sleep(600)\n")
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, MARK: mark}, start_new_session=True)
    try:
        pid = int(owner.stdout.readline())
        assert psutil.pid_exists(pid) and len(browsers(mark)) > 3
        owner.kill()  # SIGKILL: no clean-up code runs in the owner
        owner.wait()
        deadline = time.monotonic() + 10
        while browsers(mark) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert browsers(mark) == [], [_cmdline(p)[:80] for p in browsers(mark)]
    finally:
        owner.kill()


@needs_chromium
def test_a_browser_that_crashes_during_a_job_is_a_recorded_failure(tmp_path, ort_web):
    mark = uuid.uuid4().hex
    db = tmp_path / "c.duckdb"
    proc = run_marked(["benchmark", "tiny:bert", "--backend", "web:wasm", "--db", str(db),
                       "--iterations", "1", "--min-seconds", "300", "--max-seconds", "300",
                       "--json"], mark)
    seen: list[str] = []
    watcher = threading.Thread(target=_crash_browser, args=(mark, seen), daemon=True)
    watcher.start()
    try:
        out, err = proc.communicate(timeout=400)
    finally:
        proc.kill()
    watcher.join(timeout=5)
    assert seen == ["browser-crash"], err
    assert proc.returncode == 1, err
    (result,) = json.loads(out)["results"]
    assert (result["success"], result["error_category"]) == (False, "crash"), result
    assert "the browser died of SIGKILL during " in result["error"]
    (row,) = hardware_rows(db)
    assert row["error_category"] == "crash" and row["error"] == result["error"]
    time.sleep(1)
    assert browsers(mark) == [], [_cmdline(p)[:80] for p in browsers(mark)]
