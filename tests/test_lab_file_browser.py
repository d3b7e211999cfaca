"""`make lab`'s file browser shows the course, not the build's by-products (``ganlib.egg-info``, ``__pycache__``).

The server is the one ``tests/test_lab.py`` starts from the Makefile's exact command line. The test
makes its own by-products (uniquely named, removed afterwards), so it does not depend on whether
this checkout has an editable install or writes bytecode.
"""

import secrets
import shutil

from conftest import ROOT
from test_lab import _get, lab_server  # noqa: F401  (lab_server: a pytest fixture)


def test_package_metadata_and_caches_are_hidden(lab_server):  # noqa: F811
    base, token, _ = lab_server
    tag = secrets.token_hex(4)
    meta = ROOT / f"hide-check-{tag}.egg-info"           # like the ganlib.egg-info of `make setup`
    folder = ROOT / "tests" / f"hide-check-{tag}"
    try:
        meta.mkdir()
        (meta / "PKG-INFO").write_text("Name: hide-check\n")
        (folder / "__pycache__").mkdir(parents=True)
        (folder / "visible.py").write_text("")
        (folder / "stale.pyc").write_bytes(b"")
        top = {item["name"] for item in _get(f"{base}/api/contents", token)["content"]}
        assert {"course", "exercises", "solutions", "ganlib", "README.md"} <= top, top
        assert not [name for name in top if name.endswith(".egg-info")], top
        inside = {item["name"] for item in _get(f"{base}/api/contents/tests/{folder.name}", token)["content"]}
        assert inside == {"visible.py"}, inside                   # Jupyter's own hidden globs still apply
    finally:
        shutil.rmtree(meta, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
