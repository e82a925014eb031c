"""The explorer: decode and retrieval answers against the model and brute force, one-line errors,
and the page in real headless Chromium (a slider drag redraws the decoded spectrum)."""

import http.client
import json
import os
import shutil
import socket
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from spectra_lightning.analysis.runs import resolve_run
from spectra_lightning.cli import main
from spectra_lightning.explorer.app import Explorer, envelope
from spectra_lightning.explorer.headless import Chromium, find_chromium
from spectra_lightning.explorer.server import make_server

from helpers import tiny_model

ARTIFACTS = Path(
    os.environ.get("SPECTRA_LIGHTNING_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts")
)


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_store):
    """A tiny model trained for a few steps by the real CLI, encoded through ``explore --run``'s resolver."""
    tmp = tmp_path_factory.mktemp("explore")
    cfg = {
        "seed_everything": 0,
        "trainer": {
            "max_epochs": 1,
            "limit_train_batches": 4,
            "limit_val_batches": 2,
            "logger": False,
            "enable_progress_bar": False,
            "default_root_dir": str(tmp / "run"),
            "accelerator": "cpu",
            "callbacks": [
                {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"save_last": True}}
            ],
        },
        "model": tiny_model(),
        "data": {
            "class_path": "spectra_lightning.data_modules.SpectraDataModule",
            "init_args": {"store": str(tiny_store), "batch_size": 16, "val_fraction": 0.3},
        },
    }
    (tmp / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["fit", "--config", str(tmp / "cfg.yaml")]) == 0
    found = resolve_run(tmp)  # a folder of runs resolves to its newest run
    assert found["run"] == tmp / "run" and found["ckpt"].name == "last.ckpt"
    assert found["store"] == str(tiny_store)
    from spectra_lightning.analysis.encode import encode

    encode(found["ckpt"], found["store"], found["codes"], progress=False)
    return found


@pytest.fixture(scope="module")
def served(run):
    explorer = Explorer(run["ckpt"], run["codes"], run["store"])
    server = make_server(explorer, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield explorer, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def test_decode_endpoint_is_the_decoder(served):
    explorer, url = served
    nodes = explorer.nodes
    values = explorer.range[2]  # every slider at its 99th percentile
    body = get(f"{url}/api/decode?z={','.join(repr(float(v)) for v in values)}")
    z = torch.tensor(np.median(explorer.mu, axis=0), dtype=torch.float32)
    z[nodes] = torch.tensor(values, dtype=torch.float32)
    with torch.no_grad():
        want = explorer.model.net.decode(z[None])[0].numpy()
    g = explorer.grid
    want = want[g.pad_left : g.pad_left + g.n_pixels]
    assert len(body["flux"]) == g.n_pixels
    np.testing.assert_allclose(np.array(body["flux"], dtype=np.float64), want, atol=1e-6, rtol=0)
    np.testing.assert_allclose(body["wave"], g.wavelength[g.pad_left : g.pad_left + g.n_pixels], atol=1e-4)
    # moving a slider changes the spectrum; the median code gives the baseline curve
    base = np.array(get(f"{url}/api/decode")["flux"], dtype=np.float64)
    np.testing.assert_allclose(base, np.array(body["base"], dtype=np.float64))
    assert np.abs(base - want).max() > 1e-4


def test_zoomed_decode_keeps_the_envelope(served):
    explorer, url = served
    full = np.array(get(f"{url}/api/decode")["flux"], dtype=np.float64)
    wave = explorer.wave[explorer.grid.pad_left : explorer.grid.pad_left + explorer.grid.n_pixels]
    lo, hi = wave[100], wave[300]
    body = get(f"{url}/api/decode?lo={lo}&hi={hi}&n=20")
    assert len(body["flux"]) <= 40 and lo - 1 <= body["wave"][0] and body["wave"][-1] <= hi + 1
    inside = full[99:302]
    assert max(body["flux"]) == pytest.approx(inside.max(), abs=1e-6)
    assert min(body["flux"]) == pytest.approx(inside.min(), abs=1e-6)


def test_envelope_keeps_extremes_of_every_bucket():
    y = np.zeros(1000)
    y[503], y[777] = -5.0, 3.0  # one-pixel "lines" survive decimation
    y[10:20] = np.nan
    idx, v = envelope(y, 50)
    assert len(idx) <= 100 and -5.0 in v and 3.0 in v and np.all(np.diff(idx) > 0)
    idx, v = envelope(y, 0)
    assert len(idx) == 1000


def test_retrieval_returns_the_true_nearest(served):
    explorer, url = served
    sub = explorer.mu[:, explorer.nodes].astype(np.float64)
    rng = np.random.default_rng(1)
    for _ in range(3):
        q = sub[rng.integers(len(sub))] + 0.01 * rng.standard_normal(len(explorer.nodes))
        got = get(f"{url}/api/neighbours?k=7&z={','.join(map(repr, q.tolist()))}")["neighbours"]
        brute = np.argsort(np.linalg.norm(sub - q, axis=1), kind="stable")[:7]
        assert [r["index"] for r in got] == brute.tolist()
        assert got[0]["id"] == explorer.ids[brute[0]] and "teff" in got[0] and "object" in got[0]


def test_scatter_and_real_spectrum(served):
    explorer, url = served
    s = get(f"{url}/api/scatter?x={explorer.nodes[0]}&y=1&color=teff")
    assert len(s["x"]) == len(explorer.mu) and len(s["c"]) == len(s["x"])
    np.testing.assert_allclose(s["x"], explorer.mu[:, explorer.nodes[0]], atol=1e-5)
    one = get(f"{url}/api/spectrum?index=7")
    from spectra_lightning.store import SpectraStore

    g = explorer.grid
    want = SpectraStore.open(explorer.store.path).read([7])[0][g.pad_left : g.pad_left + g.n_pixels]
    got = np.array([np.nan if v is None else v for v in one["flux"]])
    np.testing.assert_allclose(got, want, atol=1e-5, equal_nan=True)
    assert one["meta"]["id"] == explorer.ids[7] and len(one["recon"]) == len(one["flux"])
    for bad in ("/api/decode?z=1", "/api/scatter?x=99", "/api/spectrum?index=100000", "/api/scatter?color=nope"):
        with pytest.raises(urllib.error.HTTPError) as e:
            get(url + bad)
        assert e.value.code == 400 and json.loads(e.value.read())["error"]


def one_error_line(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("explore: error:"), err
    for n in needles:
        assert n in err[0]


def test_bad_inputs_are_one_line(run, tmp_path, capsys):
    ckpt, codes = str(run["ckpt"]), str(run["codes"])
    assert main(["explore", "--ckpt", str(tmp_path / "missing.ckpt"), "--codes", codes]) == 2
    one_error_line(capsys, "missing.ckpt", "no such checkpoint")
    np.save(tmp_path / "small.npy", np.zeros((160, 3), np.float32))
    assert main(["explore", "--ckpt", ckpt, "--codes", str(tmp_path / "small.npy")]) == 2
    one_error_line(capsys, "small.npy", "another model")
    # same shape, other weights: caught by the fingerprint encode wrote
    import zarr

    other = tmp_path / "other.zarr"
    shutil.copytree(codes, other)
    zarr.open_group(str(other), mode="r+").attrs["model_fingerprint"] = "0123456789abcdef"
    assert main(["explore", "--ckpt", ckpt, "--codes", str(other)]) == 2
    one_error_line(capsys, "other.zarr", "another model")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["explore", "--ckpt", ckpt, "--codes", codes, "--port", str(port)]) == 2
    one_error_line(capsys, f"127.0.0.1:{port}", "--port")
    assert main(["explore", "--run", str(tmp_path)]) == 2
    one_error_line(capsys, str(tmp_path), "not a run directory")


def test_page_in_headless_chromium(served, tmp_path):
    binary = find_chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI: .ci/run installs Debian's chromium package")
        pytest.skip("Chromium not installed (Debian: apt-get install chromium); .ci/run installs it")
    explorer, url = served
    browser = Chromium(binary, tmp_path / "profile")
    try:
        browser.goto(url + "/")
        browser.wait_for("window.explorer && window.explorer.ready && !window.explorer.inflight")
        before = browser.js("document.getElementById('spectrum').toDataURL()")
        version = browser.js("window.explorer.version")
        rect = browser.js(
            "(() => { const r = document.getElementById('s0').getBoundingClientRect();"
            " return [r.left, r.top, r.width, r.height]; })()"
        )
        left, top, width, height = rect
        s0 = browser.js("(() => { const s = document.getElementById('s0'); return [+s.min, +s.max, +s.value]; })()")
        start_x = left + (s0[2] - s0[0]) / (s0[1] - s0[0]) * width
        browser.drag((start_x, top + height / 2), (left + width - 2, top + height / 2))
        browser.wait_for(
            f"window.explorer.version > {version} && !window.explorer.inflight && !window.explorer.pending"
        )
        moved = browser.js("+document.getElementById('s0').value")
        assert moved > s0[2] + 0.5 * (s0[1] - s0[2])  # the thumb went most of the way right
        after = browser.js("document.getElementById('spectrum').toDataURL()")
        assert after != before  # the plotted spectrum changed on the canvas
        # and what is plotted is what the decoder gives at the page's slider values
        values = browser.js("window.explorer.values")
        assert values[0] == pytest.approx(moved)
        plotted = np.array(browser.js("window.explorer.decoded.flux"), dtype=np.float64)
        want = explorer.decode(values)[explorer.window(None, None)]
        n = int(browser.js("Math.round(document.getElementById('spectrum').clientWidth)"))
        idx, _ = envelope(want, n)
        np.testing.assert_allclose(plotted, want[idx], atol=1e-5)
        # retrieval list filled, a click on a row overlays that stored spectrum
        browser.wait_for("document.querySelectorAll('#neighbours tbody tr').length === 10")
        browser.js("document.querySelector('#neighbours tbody tr').click()")
        browser.wait_for("window.explorer.overlay && window.explorer.overlay.flux.length > 0")
        assert browser.js("document.getElementById('overlay-key').textContent").startswith("stored ")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.screenshot(ARTIFACTS / "explorer.png")
        assert (ARTIFACTS / "explorer.png").stat().st_size > 10_000
    finally:
        browser.close()


class _Marker:
    """Unpickling this writes a file: a stand-in for the code a crafted checkpoint would run."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_a_checkpoint_that_carries_code_is_refused_unrun(run, tmp_path, capsys):
    ckpt = torch.load(run["ckpt"], map_location="cpu", weights_only=True)
    marker = tmp_path / "code-ran"
    ckpt["hyper_parameters"]["payload"] = _Marker(marker)
    torch.save(ckpt, tmp_path / "crafted.ckpt")
    assert main(["explore", "--ckpt", str(tmp_path / "crafted.ckpt"), "--codes", str(run["codes"])]) == 2
    one_error_line(capsys, "crafted.ckpt", "weights_only=True")
    assert (
        main(
            [
                "encode",
                "--ckpt",
                str(tmp_path / "crafted.ckpt"),
                "--store",
                str(run["store"]),
                "--output",
                str(tmp_path / "c.zarr"),
                "--quiet",
            ]
        )
        == 2
    )
    assert "weights_only=True" in capsys.readouterr().err
    assert not marker.exists()


def test_info_loads_when_the_report_skipped_a_label(run, tmp_path):
    report = json.loads((run["run"] / "report.json").read_text()) if (run["run"] / "report.json").exists() else None
    if report is None:  # the fixture's run has no LatentMetrics callback: analyse its codes
        from spectra_lightning.analysis.codes import load_codes
        from spectra_lightning.metrics.report import latent_report

        c = load_codes(run["codes"])
        report = latent_report(c["mu"], {"teff": np.linspace(4000, 6000, len(c["mu"]))}, c["logvar"], bootstrap=0)
    # the documented form of a label with too few finite values
    report["mi"]["ksg"]["rv"] = {"n": 3, "n_nonfinite": 157, "n_clipped": 0, "skipped": "too few finite values"}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    explorer = Explorer(run["ckpt"], run["codes"], run["store"], report=path)
    server = make_server(explorer, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        info = get(f"http://127.0.0.1:{server.server_address[1]}/api/info")
        assert "rv" not in info["mi"] and "teff" in info["mi"] and info["n_codes"] == len(explorer.mu)
    finally:
        server.shutdown()
        server.server_close()


def request(port, path, host):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_host=True)
        if host is not None:
            conn.putheader("Host", host)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_only_its_own_host_names_are_answered(served):
    explorer, url = served
    port = int(url.rsplit(":", 1)[1])
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.1", f"{socket.gethostname()}:{port}"):
        status, _ = request(port, "/api/info", host)
        assert status == 200, host
    # DNS rebinding: a page of another site reaching this server carries that site's name
    for host in (f"attacker.example:{port}", "attacker.example", f"127.0.0.1:{port + 1}", "", None):
        status, body = request(port, "/api/info", host)
        assert status == 421 and b"Host" in body, host
        status, _ = request(port, "/", host)
        assert status == 421


def test_a_burst_of_decodes_is_served(served):
    from concurrent.futures import ThreadPoolExecutor

    explorer, url = served
    z = ",".join(repr(float(v)) for v in explorer.range[1])

    def one(_):
        try:
            return len(get(f"{url}/api/decode?z={z}&n=50")["flux"]) > 0
        except OSError:
            return False

    with ThreadPoolExecutor(200) as pool:  # 200 at once, well past the old listen queue of 5
        results = list(pool.map(one, range(200)))
    assert all(results), f"{results.count(False)} of 200 failed"


def test_neighbours_k_is_bounded(served):
    explorer, url = served
    for k in ("1000000000000000000000000", "-5", "0", "1001", "ten"):
        status, body = request(int(url.rsplit(":", 1)[1]), f"/api/neighbours?k={k}", "127.0.0.1")
        assert status == 400 and b"error" in body, k
    assert len(get(f"{url}/api/neighbours?k=1000")["neighbours"]) == len(explorer.mu)  # all there are


def test_info_sends_the_real_threshold_and_no_local_paths(run, tmp_path):
    from spectra_lightning.analysis.analyze import analyze

    analyze(run["codes"], None, tmp_path, figures=False, threshold=0.05)
    info = Explorer(run["ckpt"], run["codes"], run["store"], tmp_path / "report.json").info()
    assert info["mad_threshold"] == 0.05
    assert info["checkpoint"] == "last.ckpt" and "/" not in info["store"]
    # each examined node's verdict beside its MI, as the report's separation block gives it
    separation = json.loads((tmp_path / "report.json").read_text())["separation"]["nodes"]
    assert info["verdicts"] and set(info["verdicts"]) == set(separation)
    for node, v in info["verdicts"].items():
        assert v["clean"] is separation[node]["clean"] and v["best_label"] == separation[node]["best_label"]


def test_a_token_guards_every_request(served):
    explorer, _ = served
    server = make_server(explorer, port=0, token="s3cret")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        for path in ("/", "/api/info", "/api/info?token=wrong"):
            status, body = request(port, path, "127.0.0.1")
            assert status == 403 and b"token" in body, path
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/?token=s3cret")
        r = conn.getresponse()
        r.read()
        cookie = r.getheader("Set-Cookie").split(";")[0]
        assert r.status == 200 and cookie == "spectra_lightning_token=s3cret"
        conn.request("GET", "/api/info", headers={"Cookie": cookie})  # what the page's own requests carry
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["latent_dim"] == 4
        conn.request("GET", "/api/info", headers={"Authorization": "token s3cret"})
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        server.shutdown()
        server.server_close()


def test_a_non_ascii_token_is_refused_and_an_idle_connection_closed(served):
    """A non-ASCII token made the server fail its comparison (TypeError, an empty reply); a connection that sent
    half a request was held forever."""
    import time
    from urllib.parse import quote

    explorer, _ = served
    server = make_server(explorer, port=0, token="s3cret", timeout=1.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        for path in (f"/api/info?token={quote('sécret')}", "/api/info?token=%FF%FE"):
            status, body = request(port, path, "127.0.0.1")
            assert status == 403 and b"token" in body, path
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/api/info", headers={"Authorization": "token sécret".encode().decode("latin-1")})
        assert conn.getresponse().status == 403
        conn.close()
        idle = socket.create_connection(("127.0.0.1", port), timeout=30)
        idle.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        t0 = time.monotonic()
        assert idle.recv(1024) == b""  # the server closes it
        assert time.monotonic() - t0 < 10
        idle.close()
    finally:
        server.shutdown()
        server.server_close()


def test_ip_literals_off_loopback_must_be_this_machines():
    from spectra_lightning.explorer.server import host_allowed

    mine = {"192.0.2.10"}
    assert host_allowed("192.0.2.10:8050", set(), 8050, mine) and host_allowed("127.0.0.1:8050", set(), 8050, mine)
    assert not host_allowed("198.51.100.7:8050", set(), 8050, mine)
    assert host_allowed("198.51.100.7:8050", set(), 8050, None)  # on loopback any literal passes (no rebinding)


def test_serving_off_loopback_warns_and_prints_a_token_url(run, monkeypatch, capsys):
    import spectra_lightning.explorer.command as explore_cli
    from spectra_lightning.explorer.server import ExplorerServer

    monkeypatch.setattr(explore_cli, "is_loopback", lambda host: False)  # as if bound to 0.0.0.0; no real exposure
    monkeypatch.setattr(ExplorerServer, "serve_forever", lambda self: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(["explore", "--run", str(run["run"]), "--port", "0"]) == 0
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "warning: serving beyond this machine" in err and "access token" in err
    url = out.split("-> ")[1].split()[0]
    assert url.startswith("http://127.0.0.1:") and "?token=" in url and len(url.split("?token=")[1]) >= 30
    assert main(["explore", "--run", str(run["run"]), "--port", "0", "--no-token"]) == 0
    out, err = capsys.readouterr()
    assert "without a token (--no-token)" in err and "?token=" not in out


def test_a_log_grid_run_explores_on_its_own_wavelengths_with_vacuum_presets(tmp_path):
    """A run on a vacuum log grid (as SDSS's): the wavelength axis is the grid's, the line presets in vacuum."""
    from spectra_lightning.analysis.encode import encode
    from spectra_lightning.ingest.synth import SynthSpec, synthesize
    from spectra_lightning.physics.grid import SpectralGrid, air_to_vacuum
    from spectra_lightning.physics.lines import WINDOWS

    grid_spec = "log:5100:5450:3e-5:1024"  # Mg b and the Fe I windows, vacuum
    store = tmp_path / "log.zarr"
    synthesize(str(store), SynthSpec(n=48, seed=5, grid=grid_spec), progress=False)
    cfg = {
        "seed_everything": 0,
        "trainer": {
            "max_epochs": 1,
            "limit_train_batches": 2,
            "limit_val_batches": 1,
            "logger": False,
            "enable_progress_bar": False,
            "default_root_dir": str(tmp_path / "run"),
            "accelerator": "cpu",
        },
        "model": tiny_model(),
        "data": {
            "class_path": "spectra_lightning.data_modules.SpectraDataModule",
            "init_args": {"store": str(store), "batch_size": 8, "val_fraction": 0.3, "test_fraction": 0.0},
        },
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["fit", "--config", str(tmp_path / "cfg.yaml")]) == 0
    found = resolve_run(tmp_path / "run")
    encode(found["ckpt"], found["store"], found["codes"], progress=False)
    explorer = Explorer(found["ckpt"], found["codes"], found["store"])
    g = SpectralGrid.parse(grid_spec)
    on_grid = g.wavelength[g.pad_left : g.pad_left + g.n_pixels]
    assert np.allclose(on_grid[1:] / on_grid[:-1], 10**3e-5, rtol=1e-9)  # log-spaced
    info = explorer.info()
    assert info["wave_range"] == pytest.approx([on_grid[0], on_grid[-1]])
    presets = {p["name"]: (p["lo"], p["hi"]) for p in info["presets"]}
    assert set(presets) == {"Mg b", "Fe I 5270-5330", "Fe I 5400"}
    for name, (lo, hi) in presets.items():
        assert (lo, hi) == pytest.approx(tuple(air_to_vacuum(np.array(WINDOWS[name]))))
        assert lo - WINDOWS[name][0] > 1.3  # vacuum: ~1.4 Å redward of air here
    body = explorer.handle("decode", {"lo": str(presets["Mg b"][0]), "hi": str(presets["Mg b"][1])})
    wave = np.asarray(body["wave"])
    inside = np.flatnonzero((on_grid >= presets["Mg b"][0]) & (on_grid <= presets["Mg b"][1]))
    want = on_grid[inside[0] - 1 : inside[-1] + 2]  # the window and one pixel beyond each end
    np.testing.assert_allclose(wave, want, atol=1e-4, rtol=0)  # rounded to 1e-4 Å on the wire
