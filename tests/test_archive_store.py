"""The archive store's read side, the same on the local directory and on S3
(a bucket of the test's own on the shared moto_server): keys under a prefix,
files read back byte for byte and seekable (Parquet needs it), manifests, a
missing key told from other S3 errors by its code, and the parts restore finds."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError

from edge.archive import s3 as s3_store
from edge.archive.restore_parts import archived_parts, read_batches
from edge.archive.s3 import S3Store, missing_key
from edge.archive.store import LocalStore, file_digest
from edge.archive.stores import archive_store
from edge.config.settings import ArchiveOptions, ArchiveSettings, S3Settings
from edge.core.errors import UsageError

DAY = date(2024, 6, 1)
KEYS = [
    "f/site_id=1/date=2024-06-01/part-00000.parquet",
    "f/site_id=1/date=2024-06-01/part-00001.parquet",  # not in the manifest: not verified
    "f/site_id=2/date=2024-06-01/part-00000.parquet",  # no manifest: offered
    "f/site_id=2/date=2024-06-02/part-00000.parquet",
    "f2/site_id=1/date=2024-06-01/part-00000.parquet",
    "f__one_year/site_id=1/date=2024-06-01/part-00000.parquet",
]
MANIFEST = "f/site_id=1/date=2024-06-01/_manifest.json"


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path / "archive")
    return S3Store(request.getfixturevalue("moto_bucket"))


def _parquet(path, rows: int, value: float) -> None:
    table = pa.table({"time": pa.array(range(rows), pa.timestamp("us", tz="UTC")), "v": [value] * rows})
    pq.write_table(table, path)


@pytest.fixture
def filled(store, tmp_path):
    """Every key of KEYS written through the store's write side, and one manifest."""
    for i, key in enumerate(KEYS):
        path = tmp_path / f"in-{i}.parquet"
        _parquet(path, 3 + i, float(i))
        store.put_file(key, path, file_digest(path))
    store.put_json(MANIFEST, {"parts": [{"index": 0, "file": "part-00000.parquet", "rows": 3,
                                         "field_counts": {"v": 3}}]})
    return store


def test_keys_under_a_prefix_are_the_same_on_disk_and_on_s3(filled):
    assert list(filled.keys("")) == sorted(KEYS + [MANIFEST])
    assert list(filled.keys("f/")) == sorted(k for k in KEYS + [MANIFEST] if k.startswith("f/"))
    assert list(filled.keys("f/site_id=2/")) == [KEYS[2], KEYS[3]]
    assert list(filled.keys("f")) == sorted(KEYS + [MANIFEST])  # a prefix, not a directory name
    assert list(filled.keys("f2/site_id=1/date=2024-06-01/part-")) == [KEYS[4]]
    assert list(filled.keys("nothing/")) == []


def test_files_read_back_byte_for_byte_and_seekable(filled, tmp_path):
    with filled.open_read(KEYS[1]) as f:
        data = f.read()
        f.seek(0)
        assert pq.ParquetFile(f).read().column("v").to_pylist() == [1.0] * 4
    _parquet(tmp_path / "again.parquet", 4, 1.0)
    assert data == (tmp_path / "again.parquet").read_bytes()
    assert filled.get_json(MANIFEST)["parts"][0]["rows"] == 3


def test_a_missing_key_is_none_for_json_and_an_error_for_a_file(filled):
    assert filled.get_json("f/site_id=9/date=2024-06-01/_manifest.json") is None
    with pytest.raises((FileNotFoundError, ClientError)) as caught:
        filled.open_read("f/site_id=9/date=2024-06-01/part-00000.parquet")
    if isinstance(caught.value, ClientError):
        assert missing_key(caught.value)


def test_a_missing_bucket_is_not_a_missing_key(moto_bucket):
    """By S3's error code: NoSuchBucket must not read as "no manifest yet"."""
    store = S3Store(moto_bucket.model_copy(update={"bucket": moto_bucket.bucket + "-none"}))
    with pytest.raises(ClientError) as caught:
        store.get_json(MANIFEST)
    assert caught.value.response["Error"]["Code"] == "NoSuchBucket" and not missing_key(caught.value)


def test_a_large_object_spills_to_disk_and_still_reads(moto_bucket, tmp_path, monkeypatch):
    monkeypatch.setattr(s3_store, "SPOOL_BYTES", 1024)
    store = S3Store(moto_bucket)
    path = tmp_path / "big.parquet"
    _parquet(path, 50_000, 2.5)
    store.put_file("f/site_id=1/date=2024-06-01/part-00000.parquet", path, file_digest(path))
    with store.open_read("f/site_id=1/date=2024-06-01/part-00000.parquet") as f:
        assert f._rolled  # on disk, not in memory
        assert pq.ParquetFile(f).metadata.num_rows == 50_000


def test_restore_finds_the_verified_parts_of_a_range(filled):
    found = archived_parts(filled, ["f"], None, DAY, DAY)
    assert [(p.key, p.measurement, p.site_id, p.rows, p.fields) for p in found] == [
        (KEYS[0], "f", "1", 3, frozenset({"v"})),  # the manifest's part; part-00001 is not listed
        (KEYS[2], "f", "2", None, None),  # no manifest: every part, fields from its schema
    ]
    assert [p.key for p in archived_parts(filled, ["f"], {"2"}, DAY, date(2024, 6, 2))] == [KEYS[2], KEYS[3]]
    every = archived_parts(filled, None, None, DAY, DAY)
    assert sorted({p.measurement for p in every}) == ["f", "f2", "f__one_year"]
    assert archived_parts(filled, ["f3"], None, DAY, DAY) == []
    rows = [b.num_rows for b in read_batches(filled, found[0], 2)]
    assert rows == [2, 1]


def test_the_store_follows_the_settings(tmp_path):
    local = ArchiveSettings(archive=ArchiveOptions(directory=str(tmp_path)), s3=S3Settings())
    on_s3 = local.model_copy(update={"s3": S3Settings(bucket="b", endpoint_url="http://127.0.0.1:15000")})
    assert isinstance(archive_store(local), LocalStore) and archive_store(local).root == tmp_path
    assert isinstance(archive_store(on_s3), S3Store) and archive_store(on_s3).url("") == "s3://b/archive/"
    assert isinstance(archive_store(on_s3, "local"), LocalStore)
    with pytest.raises(UsageError, match=r"--source s3 needs \[s3\] bucket"):
        archive_store(local, "s3")


def test_local_keys_skip_nothing_and_invent_nothing(tmp_path):
    """A temporary file is listed (the layout reader skips it); an empty archive lists nothing."""
    store = LocalStore(tmp_path / "archive")
    assert list(store.keys("")) == []
    store.put_json("f/site_id=1/date=2024-06-01/_manifest.json", {"parts": []})
    (tmp_path / "archive" / "f/site_id=1/date=2024-06-01/.part-00000.parquet.tmp").write_bytes(b"x")
    assert list(store.keys("f/")) == ["f/site_id=1/date=2024-06-01/.part-00000.parquet.tmp",
                                      "f/site_id=1/date=2024-06-01/_manifest.json"]
    with store.open_read("f/site_id=1/date=2024-06-01/_manifest.json") as f:
        assert f.read() == b'{\n  "parts": []\n}\n'

