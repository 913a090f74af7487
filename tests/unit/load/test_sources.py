"""The named validation corpora (`load/sources.py`): built deterministically from this machine's files and
split exactly like a text file holding the same text; the POD and docstring builders on hand-made inputs; a
machine without a corpus's files gets one line naming the path and the package."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from slicedim_lab.errors import UsageError
from slicedim_lab.load import sources
from slicedim_lab.load.corpus import CORPORA, load_text
from slicedim_lab.load.sources import SOURCES, source_text, stdlib_docstrings, strip_pod

ON_DISK = {"perldiag": sources.PERLDIAG, "git-relnotes": sources.GIT_RELNOTES, "licenses": sources.LICENSES,
           "cmake-help": sources.CMAKE_HELP, "vim-help": sources.VIM_HELP,
           "coreutils-info": sources.COREUTILS_INFO}


@pytest.fixture(autouse=True)
def fresh_cache():
    source_text.cache_clear()
    yield
    source_text.cache_clear()


def test_every_named_corpus_is_a_corpus_name() -> None:
    assert set(SOURCES) == {"stdlib-moddocs", "stdlib-funcdocs", *ON_DISK}
    assert set(SOURCES) <= set(CORPORA)


@pytest.mark.parametrize("name", sorted(ON_DISK))
def test_named_corpus_splits_like_its_text_file(name: str, tmp_path: Path) -> None:
    if not ON_DISK[name].exists():
        pytest.skip(f"{ON_DISK[name]} is not on this machine")
    text = SOURCES[name]()
    f = tmp_path / f"{name}.txt"
    f.write_text(text, encoding="utf-8")  # what the validation did: the text as a file, read back
    for split in ("calibration", "eval"):
        assert load_text(name, split) == load_text(str(f), split)
    cal, ev = load_text(name, "calibration"), load_text(name, "eval")
    assert len(cal) > 10_000 and len(ev) > 10_000 and cal != ev
    assert source_text(name) == source_text(name) and "\r" not in source_text(name)


def test_missing_files_are_one_line(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sources, "PERLDIAG", tmp_path / "nowhere" / "perldiag.pod")
    with pytest.raises(UsageError) as e:
        load_text("perldiag", "eval")
    msg = str(e.value)
    assert "\n" not in msg and "perldiag.pod" in msg and "perl-modules-5.36" in msg


def test_strip_pod_keeps_the_text() -> None:
    pod = ("=head1 NAME\n\nperldiag - various messages\n\n=over 4\n\n"
           "=item Can't find B<%s> in L<perlvar|x>\n\n(F) The C<< $x->y >> method was I<not> found.\n\n"
           "=back\n\n=cut\n")
    assert strip_pod(pod) == ("NAME\n\nperldiag - various messages\n\nCan't find %s in perlvar\n\n"
                              "(F) The $x->y method was not found.\n")


def test_stdlib_docstrings_on_a_small_tree(monkeypatch, tmp_path: Path) -> None:
    long_mod, long_fn = "M" * 201, "F" * 301
    (tmp_path / "b.py").write_text(f'"""{long_mod}"""\ndef f():\n    """{long_fn}"""\n')
    (tmp_path / "a.py").write_text('"""short"""\nclass C:\n    """' + "C" * 400 + '"""\n')
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "t.py").write_text(f'"""{long_mod}"""\n')  # tests are left out
    (tmp_path / "bad.py").write_text("def (:\n")  # unparsable files too
    monkeypatch.setattr(sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path)})
    assert stdlib_docstrings("moddocs") == long_mod + "\n"
    assert stdlib_docstrings("funcdocs") == "C" * 400 + "\n\n" + long_fn + "\n"  # sorted file order
