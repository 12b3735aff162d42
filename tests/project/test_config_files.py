"""A config path that is not a text YAML file of sane size: refused at once, with the file named and why.

Binary files (an archive, an image, random bytes), folders, files too large or nested too deep, and
YAML whose aliases expand exponentially ("billion laughs") each end in a ConfigError, quickly and with
little memory, never in a traceback.
"""

from __future__ import annotations

import gzip
import os
import struct
import time
import tracemalloc
import zipfile

import pytest

from headwater.common.yaml_guards import MAX_BYTES, MAX_DEPTH, MAX_VALUES
from headwater.common.yaml_source import read_yaml
from headwater.plugins.manager import connector_registry
from headwater.project.config import ConfigError, load_project

CONFIG = 'sources:\n  files:\n    connector: filesystem\n    settings: {bucket_url: /data, files: {orders: "*.csv"}}\n'
PNG = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)


def billion_laughs(levels: int = 9) -> str:
    """Nine aliases of nine aliases of ...: a few hundred bytes that expand to 9**levels strings."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n" + CONFIG


def merge_bomb(levels: int = 9) -> str:
    """The same growth through `<<:` merge keys, which copy every key of the mappings they merge."""
    lines = ["m0: &m0 {" + ", ".join(f"k{key}: 1" for key in range(9)) + "}"]
    for level in range(1, levels):
        lines.append(f"m{level}: &m{level} {{<<: [" + ", ".join([f"*m{level - 1}"] * 9) + "]}")
    return "\n".join(lines) + "\n" + CONFIG


def refused(path) -> str:
    with pytest.raises(ConfigError) as raised:
        load_project(path, connector_registry())
    lines = str(raised.value).splitlines()
    assert lines[0] == "Invalid project config (1 problem); nothing was run or written. Fix and run again:"
    return lines[1].strip()


@pytest.mark.parametrize(
    "content, kind",
    [
        (PNG, "a PNG image"),
        (gzip.compress(CONFIG.encode()), "a gzip archive"),
        (b"SQLite format 3\x00" + bytes(200), "an SQLite database"),
        (b"PAR1" + bytes(64), "a Parquet file"),
        (bytes(range(256)) * 16, "binary data (it holds NUL bytes)"),
        (bytes(byte for byte in os.urandom(4096) if byte) or b"\x01", None),  # random bytes, no NUL among them
    ],
    ids=["png", "gzip", "sqlite", "parquet", "nul-bytes", "random"],
)
def test_a_binary_file_is_not_a_text_yaml_file(tmp_path, content, kind):
    path = tmp_path / "headwater.yaml"
    path.write_bytes(content)
    message = refused(path)
    assert message.startswith(f"{path}: not a text YAML file: it looks like {kind or 'binary data'}"), message
    assert message.endswith("Is this the file you meant?")


def test_a_zip_archive_is_named_as_such(tmp_path):
    path = tmp_path / "headwater.yaml"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("headwater.yaml", CONFIG)
    assert refused(path) == (f"{path}: not a text YAML file: it looks like a ZIP archive (or an Office document). "
                             "Is this the file you meant?")


def test_text_in_another_encoding_is_still_called_text(tmp_path):
    path = tmp_path / "headwater.yaml"
    path.write_bytes(CONFIG.encode("utf-16"))
    assert refused(path) == f"{path}:1:1: UTF-16 text (byte 0xff); save the file with the UTF-8 encoding"
    path.write_bytes(("# Zürich, Genève\n" + CONFIG).encode("cp1252"))
    assert refused(path) == f"{path}:1:4: not UTF-8 text (byte 0xfc); save the file with the UTF-8 encoding"


def test_a_control_character_in_a_text_file_is_pointed_at(tmp_path):
    path = tmp_path / "headwater.yaml"
    path.write_text("# shop\n" + CONFIG.replace("connector: filesystem", "connector: file\x07system"))
    assert refused(path) == (f"{path}:4:20: not valid YAML: the control character U+0007, which YAML does not "
                             "allow in a file; remove it (is this a text file?)")


def test_a_folder_given_as_the_config_is_named(tmp_path):
    folder = tmp_path / "headwater.yaml"
    folder.mkdir()
    assert refused(folder) == f"{folder}: is a folder, not a file; name the YAML file itself"


@pytest.mark.parametrize("bomb", [billion_laughs, merge_bomb], ids=["aliases", "merge-keys"])
def test_an_alias_bomb_is_refused_within_a_second_and_little_memory(tmp_path, bomb):
    path = tmp_path / "headwater.yaml"
    path.write_text(bomb())
    tracemalloc.start()
    started = time.perf_counter()
    try:
        message = refused(path)
    finally:
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert seconds < 1.0
    assert peak < 10 * 1024 * 1024, f"{peak:,} bytes"
    assert message.startswith(f"{path}:")
    assert f"which makes the file hold more than {MAX_VALUES:,} (aliases that repeat aliases grow it " \
           "exponentially); write the repeated parts out, or repeat less" in message


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path):
    path = tmp_path / "headwater.yaml"
    path.write_text("defaults: &loop {retries: 3, again: *loop}\n" + CONFIG)
    assert refused(path) == (f"{path}:1:37: *loop is used inside the very value &loop names, so it would repeat "
                             "itself forever; remove the alias")


def test_nesting_deeper_than_the_limit_is_refused(tmp_path):
    path = tmp_path / "headwater.yaml"
    path.write_text(CONFIG + "catalog: " + "[" * 100_000 + "]" * 100_000 + "\n")
    message = refused(path)
    assert message.startswith(f"{path}:5:")
    assert message.endswith(f"nested more than {MAX_DEPTH} levels deep; a config file needs far fewer, check the "
                            "indentation and brackets here")


def test_a_file_larger_than_the_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "headwater.yaml"
    path.write_text(CONFIG + "# padding\n" * (MAX_BYTES // 10 + 1))
    assert refused(path) == (f"{path}: the file is 1.0 MiB; a config file may be at most 1 MiB. Is this the file "
                             "you meant?")


def test_anchors_aliases_and_merge_keys_within_the_limits_still_load(tmp_path):
    path = tmp_path / "headwater.yaml"
    path.write_text("x-files: &files {connector: filesystem}\n"
                    "x-glob: &glob '*.csv'\n"
                    "sources:\n"
                    "  a: {<<: *files, settings: {bucket_url: /a, files: {orders: *glob}}}\n"
                    "  b: {<<: *files, settings: {bucket_url: /b, files: {orders: *glob}}}\n")
    document = read_yaml(path)
    assert document.data["sources"]["b"] == {"connector": "filesystem",
                                             "settings": {"bucket_url": "/b", "files": {"orders": "*.csv"}}}
    assert document.line_of(("sources", "b", "settings")) == 5
