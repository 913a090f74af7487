"""`gguf_parsed_once`: within a conversion, each GGUF file is parsed once and its reader shared (transformers
parses the file for the config, the weights and the tokenizer); outside it, every call parses again."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from slicedim_lab.load.models import gguf_parsed_once


def tiny_gguf(path: Path) -> Path:
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_uint32("llama.block_count", 2)
    w.add_string("general.name", "tiny")
    w.add_tensor("token_embd.weight", np.arange(12, dtype=np.float32).reshape(3, 4))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_one_parse_per_file_inside_and_a_fresh_one_outside(tmp_path: Path) -> None:
    a, b = tiny_gguf(tmp_path / "a.gguf"), tiny_gguf(tmp_path / "b.gguf")
    original = gguf.GGUFReader
    with gguf_parsed_once():
        first = gguf.GGUFReader(a)
        assert gguf.GGUFReader(str(a)) is first  # a str or a Path: the same file, the same reader
        assert gguf.GGUFReader(b) is not first
        assert first.fields["general.name"].contents() == "tiny"
        np.testing.assert_array_equal(first.tensors[0].data.reshape(3, 4),
                                      np.arange(12, dtype=np.float32).reshape(3, 4))
    assert gguf.GGUFReader is original
    assert gguf.GGUFReader(a) is not gguf.GGUFReader(a)


def test_the_reader_is_restored_when_the_block_fails(tmp_path: Path) -> None:
    original = gguf.GGUFReader
    with pytest.raises(RuntimeError), gguf_parsed_once():
        raise RuntimeError("conversion failed")
    assert gguf.GGUFReader is original
