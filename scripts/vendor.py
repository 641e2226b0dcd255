"""Fetches the web client's third-party libraries from the npm registry (`npm pack`) and copies
the files Parley serves into app/web/static/vendor/ (axe-core, for the browser tests only, into
tests/web/vendor/), with their licences. Writes MANIFEST.json next to them: each package's
version, the registry's integrity hash of its tarball, and the sha256 of every file copied.

    make vendor                          # fetch the pinned versions and rewrite the manifests
    .venv/bin/python scripts/vendor.py --check   # verify the committed files (no network)

Files are copied byte for byte (no build step; each is already an ES module). To upgrade, change
a version below, run `make vendor`, and read the libraries' changelogs.
"""

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEB_VENDOR = ROOT / "app" / "web" / "static" / "vendor"
TEST_VENDOR = ROOT / "tests" / "web" / "vendor"

# highlight.js grammars served to users: a small set (each is 1-6 KB compressed).
HIGHLIGHT_LANGUAGES = (
    "bash",
    "css",
    "diff",
    "javascript",
    "json",
    "python",
    "sql",
    "typescript",
    "xml",
    "yaml",
)


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    target: Path
    # tarball path (under package/) -> file name under `target`
    files: dict[str, str] = field(default_factory=dict)


PACKAGES = (
    Package(
        "markdown-it",
        "15.0.3",
        WEB_VENDOR,
        {
            "dist/browser/markdown-it.esm.min.mjs": "markdown-it.js",
            "LICENSE": "LICENSE.markdown-it",
        },
    ),
    # Bundled inside markdown-it's browser build: their licences only (the versions its
    # package.json asked for when it was built).
    *(
        Package(
            name, version, WEB_VENDOR, {licence: f"LICENSE.markdown-it.{name.removesuffix('.js')}"}
        )
        for name, version, licence in (
            ("entities", "8.1.0", "LICENSE"),
            ("linkify-it", "6.1.0", "LICENSE"),
            ("mdurl", "2.1.0", "LICENSE"),
            ("punycode.js", "2.3.1", "LICENSE-MIT.txt"),
            ("uc.micro", "3.0.0", "LICENSE.txt"),
        )
    ),
    Package(
        "dompurify",
        "3.5.0",
        WEB_VENDOR,
        {"dist/purify.es.mjs": "purify.js", "LICENSE": "LICENSE.dompurify"},
    ),
    Package(
        "@highlightjs/cdn-assets",
        "11.12.0",
        WEB_VENDOR,
        {
            "es/core.min.js": "highlight/core.js",
            **{
                f"es/languages/{name}.min.js": f"highlight/languages/{name}.js"
                for name in HIGHLIGHT_LANGUAGES
            },
            "LICENSE": "LICENSE.highlightjs",
        },
    ),
    Package(
        "axe-core",
        "4.14.1",
        TEST_VENDOR,
        {
            "axe.min.js": "axe.min.js",
            "LICENSE": "LICENSE.axe-core",
            "LICENSE-3RD-PARTY.txt": "LICENSE-3RD-PARTY.axe-core.txt",
        },
    ),
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def npm_pack(spec: str, into: Path) -> tuple[Path, str]:
    """Downloads `spec`'s tarball with the npm client; returns it and its registry integrity."""
    # The npm client from PATH, with a pinned spec from PACKAGES above: nothing untrusted.
    out = subprocess.run(  # noqa: S603
        ["npm", "pack", spec, "--json", "--pack-destination", str(into)],  # noqa: S607
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    [info] = json.loads(out)
    return into / info["filename"], info["integrity"]


def fetch() -> None:
    manifests: dict[Path, dict[str, dict[str, object]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for package in PACKAGES:
            tarball, integrity = npm_pack(f"{package.name}@{package.version}", Path(tmp))
            copied: dict[str, str] = {}
            with tarfile.open(tarball) as archive:
                for source, name in package.files.items():
                    member = archive.extractfile(f"package/{source}")
                    if member is None:
                        raise SystemExit(f"{package.name}: no {source} in the tarball")
                    dest = package.target / name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with dest.open("wb") as out:
                        shutil.copyfileobj(member, out)
                    copied[name] = sha256(dest)
            manifests.setdefault(package.target, {})[package.name] = {
                "version": package.version,
                "tarball_integrity": integrity,
                "files": copied,
            }
            print(f"{package.name}@{package.version}: {len(copied)} files -> {package.target}")
    for target, packages in manifests.items():
        (target / "MANIFEST.json").write_text(json.dumps(packages, indent=2) + "\n")


def check() -> int:
    """Every file in the manifests is there with its recorded sha256."""
    problems = []
    for target in {p.target for p in PACKAGES}:
        manifest = json.loads((target / "MANIFEST.json").read_text())
        for name, entry in manifest.items():
            for file, digest in entry["files"].items():
                path = target / file
                if not path.exists():
                    problems.append(f"{name}: {path} is missing")
                elif sha256(path) != digest:
                    problems.append(f"{name}: {path} differs from the manifest")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="verify, do not fetch")
    args = parser.parse_args()
    if args.check:
        return check()
    fetch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
