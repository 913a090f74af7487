"""The named validation corpora: texts this machine's Python and Debian packages ship, built exactly.

Each one is a function from files to one text, exactly as the predictor validation built it
(`experiments/README.md`); `corpus.load_text` splits it like a text file (paragraphs at blank lines, even
ones → calibration, odd → eval), so `--corpus NAME` reruns that validation anywhere the files exist. A
machine without them gets a one-line `UsageError` naming the missing path and the package that ships it.

| name | text | ships with |
|---|---|---|
| `stdlib-moddocs` | module docstrings (> 200 chars) of this Python's standard library, sorted | Python |
| `stdlib-funcdocs` | class and function docstrings (> 300 chars), same files | Python |
| `perldiag` | perldiag.pod with its POD markup stripped | perl-modules-5.36 |
| `git-relnotes` | git's release notes, sorted | git |
| `licenses` | /usr/share/common-licenses, sorted | base-files |
| `cmake-help` | CMake's reStructuredText help, sorted | cmake-data |
| `vim-help` | Vim's help files, sorted | vim-runtime |
| `coreutils-info` | the coreutils info manual, decompressed | coreutils |

Files are joined with a blank line and read as UTF-8 (undecodable bytes replaced); line ends are those of a
text file read back (`\\r\\n` and `\\r` become `\\n`), as the validation's corpus files were.
"""

from __future__ import annotations

import ast
import functools
import gzip
import re
import sysconfig
from collections.abc import Callable
from pathlib import Path

from ..errors import UsageError

PERLDIAG = Path("/usr/share/perl/5.36/pod/perldiag.pod")
GIT_RELNOTES = Path("/usr/share/doc/git/RelNotes")
LICENSES = Path("/usr/share/common-licenses")
CMAKE_HELP = Path("/usr/share/cmake-3.25/Help")
VIM_HELP = Path("/usr/share/vim/vim90/doc")
COREUTILS_INFO = Path("/usr/share/info/coreutils.info.gz")
_POD_HEADS = ("=item", "=head1", "=head2", "=head3", "=head4")
_NOT_DOCS = ("site-packages", "test/", "idlelib/idle_test", "lib2to3/tests")  # stdlib folders left out


def _need(corpus: str, path: Path, package: str) -> Path:
    """`path`, or the one-line error of a machine without it."""
    if not path.exists():
        raise UsageError(f"corpus {corpus!r} needs {path}, which this machine does not have (Debian package "
                         f"{package})")
    return path


def _joined(files: list[Path]) -> str:
    return "\n\n".join(f.read_text(encoding="utf-8", errors="replace") for f in files)


def strip_pod(text: str) -> str:
    """POD without its markup: each paragraph stripped; a heading or `=item` keeps its text, other commands
    keep what follows their first line (or go); formatting codes (B<…>, L<text|target>, C<< … >>) keep
    their text, three levels deep."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        p = para.strip()
        if not p:
            continue
        if p.startswith("="):
            head, _, rest = p.partition("\n")
            cmd, _, arg = head.partition(" ")
            if cmd in _POD_HEADS and arg.strip() not in ("", "*"):
                p = arg.strip() + ("\n" + rest if rest else "")
            elif rest:
                p = rest
            else:
                continue
        for _ in range(3):  # nested formatting codes
            p = re.sub(r"[A-Z]<<+\s(.*?)\s>>+", r"\1", p)
            p = re.sub(r"[LCBIFSXEZ]<([^<>]*)>", lambda m: m.group(1).split("|")[0], p)
        out.append(p)
    return "\n\n".join(out) + "\n"


def stdlib_docstrings(kind: str) -> str:
    """Module (`moddocs`, > 200 chars) or class/function (`funcdocs`, > 300 chars) docstrings of this
    Python's standard library (parsed with `ast`, nothing imported; tests and site-packages left out), in
    sorted file order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root).as_posix()
        if rel.startswith(_NOT_DOCS) or "/tests/" in rel:
            continue
        try:
            tree = ast.parse(f.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        if kind == "moddocs":
            d = ast.get_docstring(tree)
            if d and len(d) > 200:
                out.append(d.strip())
        else:
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                    d = ast.get_docstring(node)
                    if d and len(d) > 300:
                        out.append(d.strip())
    return "\n\n".join(out) + "\n"


def _perldiag() -> str:
    return strip_pod(_need("perldiag", PERLDIAG, "perl-modules-5.36").read_text(encoding="utf-8"))


def _git_relnotes() -> str:
    return _joined(sorted(_need("git-relnotes", GIT_RELNOTES, "git").glob("*.txt")))


def _licenses() -> str:
    return _joined(sorted(p for p in _need("licenses", LICENSES, "base-files").iterdir() if p.is_file()))


def _cmake_help() -> str:
    return _joined(sorted(_need("cmake-help", CMAKE_HELP, "cmake-data").rglob("*.rst")))


def _vim_help() -> str:
    return _joined(sorted(_need("vim-help", VIM_HELP, "vim-runtime").glob("*.txt")))


def _coreutils_info() -> str:
    raw = gzip.decompress(_need("coreutils-info", COREUTILS_INFO, "coreutils").read_bytes())
    return raw.decode("utf-8", errors="replace")


SOURCES: dict[str, Callable[[], str]] = {
    "stdlib-moddocs": functools.partial(stdlib_docstrings, "moddocs"),
    "stdlib-funcdocs": functools.partial(stdlib_docstrings, "funcdocs"),
    "perldiag": _perldiag,
    "git-relnotes": _git_relnotes,
    "licenses": _licenses,
    "cmake-help": _cmake_help,
    "vim-help": _vim_help,
    "coreutils-info": _coreutils_info,
}


@functools.cache
def source_text(name: str) -> str:
    """The whole text of a named validation corpus (built once per process), with a text file's line ends."""
    text = SOURCES[name]()
    return text.replace("\r\n", "\n").replace("\r", "\n")
