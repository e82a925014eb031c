"""The object-store path against a real S3 server: moto's, started on loopback by this module.

The commands find the endpoint and credentials where users' tools do, in the standard AWS variables
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...); configs and the Python API can pass fsspec
``storage_options`` instead (tested with the variables unset).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from spectra_lightning.ingest.synth import SynthSpec, synthesize
from spectra_lightning.store import SpectraStore

from helpers import ddp_fit_checks, harps_spectra, ingest_cmd, kill_when_rows, run_cli, streaming_config

s3fs = pytest.importorskip(
    "s3fs", reason="the S3 tests need the [s3] extra (s3fs) and moto[server]: pip install -e '.[dev]'"
)
pytest.importorskip("moto.server", reason="the S3 tests need moto[server] (in the dev extra)")

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
TINY = SynthSpec(n=96, seed=5, grid="tiny", spectra_per_star=2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server in its own process (so killed and DDP child processes reach it too); the
    module's processes see it through the AWS variables."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail(f"moto's S3 server did not start on {url}")
            time.sleep(0.1)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {**CREDENTIALS, "AWS_ENDPOINT_URL": url}.items():
            mp.setenv(k, v)
        yield url
    server.kill()
    server.wait()


@pytest.fixture
def bucket(s3_endpoint):
    """A fresh bucket's name."""
    name = f"spectra-{uuid.uuid4().hex[:8]}"
    s3fs.S3FileSystem(skip_instance_cache=True).mkdir(name)
    return name


def objects(bucket: str) -> list[str]:
    return s3fs.S3FileSystem(skip_instance_cache=True).find(bucket)


def assert_same_store(a: SpectraStore, b: SpectraStore) -> None:
    assert list(a.meta["id"]) == list(b.meta["id"])
    np.testing.assert_array_equal(a.read(np.arange(a.n)), b.read(np.arange(b.n)))
    for k in a.meta:
        np.testing.assert_array_equal(a.meta[k], b.meta[k])


def test_synth_writes_into_the_bucket_not_a_local_folder(tmp_path, bucket):
    url = f"s3://{bucket}/s.zarr"
    args = ["synth", "--output", url, "--n", str(TINY.n), "--seed", "5", "--grid", "tiny", "--spectra-per-star", "2"]
    out = run_cli([*args, "--quiet"], tmp_path).stdout
    assert f"to {url}" in out and not (tmp_path / "s3:").exists()
    assert any(k.endswith("zarr.json") for k in objects(bucket))
    synthesize(str(tmp_path / "local.zarr"), TINY, progress=False)
    assert_same_store(SpectraStore.open(url), SpectraStore.open(tmp_path / "local.zarr"))
    # a second synth to the same URL is refused, naming it; the store is untouched
    again = run_cli([*args, "--quiet"], tmp_path, ok=False)
    assert again.returncode == 2 and url in again.stderr and SpectraStore.open(url).n == TINY.n


def test_ingest_to_the_bucket_killed_and_rerun_gives_the_clean_store(tmp_path, bucket):
    files = harps_spectra()
    clean = tmp_path / "clean.zarr"
    subprocess.run(ingest_cmd(files, clean, "--workers", "1"), check=True)
    url = f"s3://{bucket}/archive.zarr"
    kill_when_rows(subprocess.Popen(ingest_cmd(files, url, "--workers", "1", "--batch", "1")), url, 3)
    partial = SpectraStore.open(url)
    assert 0 < partial.n < SpectraStore.open(clean).n  # killed mid-way: whole spectra only
    partial.read(np.arange(partial.n))
    subprocess.run(ingest_cmd(files, url, "--workers", "2"), check=True)  # takes over the dead writer's lock
    assert_same_store(SpectraStore.open(clean), SpectraStore.open(url))
    verify = run_cli(["verify", url, "--json", "--quiet"], tmp_path)
    assert json.loads(verify.stdout)["ok"]


def test_two_process_ddp_fit_streams_from_the_bucket_and_encode_reads_it(tmp_path, bucket):
    # the DDP checks of the default suite (on a local store: test_streaming.py, under -m slow)
    url = f"s3://{bucket}/one_per_star.zarr"
    one_per_star = SynthSpec(n=120, seed=4, grid="tiny")  # a split of odd size exists
    synthesize(url, one_per_star, progress=False)
    run = ddp_fit_checks(tmp_path, url)  # its encode read the bucket
    # encode from the bucket gives the codes of the same store on local disk
    local = tmp_path / "local.zarr"
    synthesize(str(local), one_per_star, progress=False)
    from spectra_lightning.cli import main

    ckpt = next((run / "checkpoints").glob("*.ckpt"))
    args = ["encode", "--ckpt", str(ckpt), "--store", str(local), "--output", str(tmp_path / "l.zarr"), "--quiet"]
    assert main(args) == 0
    from spectra_lightning.analysis.codes import load_codes

    remote, local_codes = load_codes(tmp_path / "codes.zarr"), load_codes(tmp_path / "l.zarr")
    assert remote["mu"].shape == (one_per_star.n, 4)
    np.testing.assert_array_equal(remote["mu"], local_codes["mu"])


def test_storage_options_instead_of_the_aws_variables(tmp_path, bucket, s3_endpoint, monkeypatch, capsys):
    url = f"s3://{bucket}/tiny.zarr"
    synthesize(url, TINY, progress=False)
    options = {
        "endpoint_url": s3_endpoint,
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"region_name": "us-east-1"},
    }
    for k in (*CREDENTIALS, "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))  # no profile to fall back on
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    s3fs.S3FileSystem.clear_instance_cache()
    assert SpectraStore.open(url, storage_options=options).n == TINY.n
    from spectra_lightning.cli import main

    # in this process (no spawned interpreter): the loader's worker inherits the variables as they are now
    cfg = streaming_config(tmp_path, url, {"storage_options": options}, max_epochs=1)
    assert main(["fit", "--config", str(cfg)]) == 0
    probe = json.loads((tmp_path / "run" / "probe_rank0.json").read_text())
    split = json.loads((tmp_path / "run" / "split.json").read_text())["split_ids"]
    meta = SpectraStore.open(url, storage_options=options).meta
    pos = {v: i for i, v in enumerate(meta["id"])}
    assert sorted(probe["seen"]["0"]) == sorted(pos[i] for i in split["train"])  # every training spectrum, once
    # without either, the failure names the store
    s3fs.S3FileSystem.clear_instance_cache()
    assert main(["fit", "--config", str(streaming_config(tmp_path, url, max_epochs=1))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{url}: cannot open (NoCredentialsError" in err[0]


def test_a_shared_model_loads_from_the_bucket_with_its_sha256(bucket, tmp_path, monkeypatch):
    import spectra_lightning as sl
    from spectra_lightning.api import CheckpointError, sha256_of
    from spectra_lightning.model.checkpoints import fingerprint

    from helpers import TESTS

    src = TESTS / "data" / "format2_tiny_warp_0.4.ckpt"
    s3fs.S3FileSystem(skip_instance_cache=True).put(str(src), f"{bucket}/models/tiny.ckpt")
    monkeypatch.setenv("SPECTRA_LIGHTNING_CACHE", str(tmp_path))
    digest = sha256_of(src)
    model = sl.load(f"s3://{bucket}/models/tiny.ckpt", sha256=digest)
    assert fingerprint(model.module) == fingerprint(sl.load(src).module)
    assert (tmp_path / "models" / f"{digest}-tiny.ckpt").is_file()
    with pytest.raises(CheckpointError, match="cannot download"):
        sl.load(f"s3://{bucket}/models/none.ckpt")
