"""The artifact store every worker and the code location share: a folder, or S3 over real HTTP (moto's server)."""

import json

import boto3
import pytest

from connectors.artifacts import ArtifactStoreError, FolderStore, S3Store, artifact_store
from pipelines.settings import SettingsError, load_settings
from tests.s3 import S3Server


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with S3Server(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture
def s3_env(s3, monkeypatch):
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    return s3


def render_folder(folder, variant_id="v1"):
    """A render folder as the worker leaves it: files, a nested one, the manifest."""
    (folder / "frames").mkdir(parents=True)
    (folder / "still.png").write_bytes(b"\x89PNG" + bytes(range(256)) * 40)
    (folder / "still.jpg").write_bytes(b"\xff\xd8" + b"j" * 5000)
    (folder / "frames" / "0001.png").write_bytes(b"frame")
    (folder / "manifest.json").write_text(json.dumps({"variant_id": variant_id}))
    return folder


def tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_render_put_on_one_machine_reads_back_byte_for_byte_on_another(s3_env, tmp_path):
    worker = artifact_store("s3://autoplay-test/deploy-a", tmp_path / "worker-home")
    rendered = render_folder(worker.local_root / "v1")
    location = worker.put(rendered, "v1")
    assert location == "s3://autoplay-test/deploy-a/renders/v1"

    code_location = artifact_store("s3://autoplay-test/deploy-a", tmp_path / "code-home")
    assert not (code_location.local_root / "v1").exists()
    folder = code_location.local(location)
    assert folder == tmp_path / "code-home" / "renders" / "v1"
    assert tree(folder) == tree(rendered)
    keys = boto3.client("s3").list_objects_v2(Bucket="autoplay-test", Prefix="deploy-a/renders/v1/")["Contents"]
    assert sorted(k["Key"].rsplit("v1/", 1)[1] for k in keys) == sorted(tree(rendered))


def test_putting_a_render_again_after_a_retry_leaves_one_copy_of_each_file(s3_env, tmp_path):
    store = artifact_store("s3://autoplay-test/retry", tmp_path / "home")
    rendered = render_folder(store.local_root / "v2", "v2")
    store.put(rendered, "v2")
    (rendered / "still.jpg").write_bytes(b"\xff\xd8second")
    store.put(rendered, "v2")
    keys = boto3.client("s3").list_objects_v2(Bucket="autoplay-test", Prefix="retry/renders/v2/")["Contents"]
    assert len(keys) == 4
    elsewhere = artifact_store("s3://autoplay-test/retry", tmp_path / "other")
    assert (elsewhere.local(store.location("v2")) / "still.jpg").read_bytes() == b"\xff\xd8second"


def test_an_upload_cut_before_its_manifest_is_not_taken_for_a_render(s3_env, tmp_path):
    store = artifact_store("s3://autoplay-test/cut", tmp_path / "home")
    client = boto3.client("s3")
    store.client.head_bucket(Bucket="autoplay-test")  # made on first use
    client.put_object(Bucket="autoplay-test", Key="cut/renders/v3/still.png", Body=b"half")
    other = artifact_store("s3://autoplay-test/cut", tmp_path / "other")
    assert other.pull("v3") is False
    assert not (other.local_root / "v3").exists() and not list(other.local_root.glob(".v3.*"))
    with pytest.raises(ArtifactStoreError, match=r"s3://autoplay-test/cut/renders/v3: no render stored there"):
        other.local("s3://autoplay-test/cut/renders/v3")


def test_a_location_outside_the_store_and_an_unreachable_server_are_named(s3_env, tmp_path, monkeypatch):
    store = artifact_store("s3://autoplay-test/mine", tmp_path / "home")
    with pytest.raises(ArtifactStoreError, match=r"s3://other-bucket/x/renders/v1: not a location in"):
        store.local("s3://other-bucket/x/renders/v1")
    with pytest.raises(ArtifactStoreError, match=r"s3://autoplay-test/mine/renders/v1: in object storage, but"):
        artifact_store(None, tmp_path).local("s3://autoplay-test/mine/renders/v1")
    assert store.local(str(tmp_path / "renders" / "v0")) == tmp_path / "renders" / "v0"  # from before S3
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(ArtifactStoreError, match=r"s3://autoplay-test"):
        S3Store.from_url("s3://autoplay-test/down/renders", tmp_path / "down").pull("v1")


def test_the_default_store_is_the_homes_renders_folder_and_a_folder_store_copies_renders_in(tmp_path):
    store = artifact_store(None, tmp_path)
    assert isinstance(store, FolderStore) and store.local_root == tmp_path / "renders"
    rendered = render_folder(store.local_root / "v4", "v4")
    assert store.put(rendered, "v4") == str(rendered)  # already in place: nothing copied
    shared = artifact_store(str(tmp_path / "mount"), tmp_path)
    location = shared.put(rendered, "v4")
    assert location == str(tmp_path / "mount" / "renders" / "v4") and tree(shared.local(location)) == tree(rendered)


def test_a_bad_artifacts_setting_names_the_variable(tmp_path):
    with pytest.raises(SettingsError, match="AUTOPLAY_ARTIFACTS='ftp://host/x'"):
        load_settings({"AUTOPLAY_HOME": str(tmp_path), "AUTOPLAY_ARTIFACTS": "ftp://host/x"})
    settings = load_settings({"AUTOPLAY_HOME": str(tmp_path), "AUTOPLAY_ARTIFACTS": "s3://bucket/prefix"})
    assert settings.mlflow_artifact_location == "s3://bucket/prefix/mlflow"
    shouted = load_settings({"AUTOPLAY_HOME": str(tmp_path), "AUTOPLAY_ARTIFACTS": "S3://bucket/prefix"})
    assert shouted.artifacts == "s3://bucket/prefix" and shouted.mlflow_artifact_location == "s3://bucket/prefix/mlflow"
    assert settings.renders_dir == tmp_path / "renders"


def test_a_forged_key_or_location_never_writes_outside_the_renders_folder(s3_env, tmp_path):
    store = artifact_store("s3://autoplay-test/forged", tmp_path / "home")
    client = store.client
    for key in ("forged/renders/v5/../../../../escaped.txt", "forged/renders/v5/manifest.json"):
        client.put_object(Bucket="autoplay-test", Key=key, Body=b"x")
    with pytest.raises(ArtifactStoreError, match="a key outside its render's folder"):
        store.pull("v5")
    with pytest.raises(ArtifactStoreError, match="'../v5': not a variant id"):
        store.local("s3://autoplay-test/forged/renders/../v5")
    assert not list(tmp_path.rglob("escaped.txt")) and not (tmp_path / "home" / "renders" / "v5").exists()


def test_two_readers_pulling_the_same_render_at_once_both_get_it_whole(s3_env, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    writer = artifact_store("s3://autoplay-test/race", tmp_path / "worker")
    rendered = render_folder(writer.local_root / "v6", "v6")
    location = writer.put(rendered, "v6")
    readers = [artifact_store("s3://autoplay-test/race", tmp_path / "code") for _ in range(4)]  # one shared copy
    with ThreadPoolExecutor(4) as pool:
        folders = list(pool.map(lambda store: store.local(location), readers))
    assert all(tree(f) == tree(rendered) for f in folders)
    assert not list((tmp_path / "code" / "renders").glob(".v6.*"))  # no staging left behind


def test_a_relative_folder_store_is_one_folder_for_every_process_and_a_mistyped_url_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({"AUTOPLAY_HOME": str(tmp_path / "home"), "AUTOPLAY_ARTIFACTS": "shared"})
    assert settings.artifacts == str(tmp_path / "shared") and settings.renders_dir == tmp_path / "shared" / "renders"
    with pytest.raises(SettingsError, match="AUTOPLAY_ARTIFACTS='s3:/bucket/x'"):
        load_settings({"AUTOPLAY_HOME": str(tmp_path), "AUTOPLAY_ARTIFACTS": "s3:/bucket/x"})
