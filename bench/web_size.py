"""The web client's first load: every JavaScript module and stylesheet the page at / loads before
it can be used, raw and gzip-compressed (level 6, what a compressing proxy or CDN typically uses;
Parley itself serves them uncompressed). The budget is 150 KB compressed.

    .venv/bin/python bench/web_size.py

Follows the shell's <script type="module">, <link rel="stylesheet"> and <link rel="modulepreload">
and, through them, every static `import ... from "./x.js"` (the client has no dynamic imports),
the vendored libraries under vendor/ included.
Prints a markdown table.
"""

import gzip
import re
import sys
from pathlib import Path

WEB = Path(__file__).resolve().parent.parent / "app" / "web"
BUDGET = 150 * 1024
ASSET = re.compile(r'<(?:script[^>]*\bsrc|link[^>]*\bhref)="/static/([^"]+\.(?:js|css))"')
IMPORT = re.compile(r'^\s*(?:import|export)\b[^;]*?\bfrom\s+"\./([^"]+)"', re.MULTILINE)


def first_load() -> list[Path]:
    """The shell's JS and CSS files and everything they import, in load order."""
    static = WEB / "static"
    queue = [static / name for name in ASSET.findall((WEB / "index.html").read_text())]
    seen: list[Path] = []
    while queue:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.append(path)
        if path.suffix == ".js":
            queue += [path.parent / name for name in IMPORT.findall(path.read_text())]
    return seen


def sizes() -> list[tuple[str, int, int]]:
    """(file, bytes, gzip bytes) for each file of the first load."""
    rows = []
    for path in first_load():
        data = path.read_bytes()
        name = path.relative_to(WEB / "static").as_posix()
        rows.append((name, len(data), len(gzip.compress(data, compresslevel=6))))
    return rows


def main() -> int:
    rows = sizes()
    raw = sum(r[1] for r in rows)
    packed = sum(r[2] for r in rows)
    print("| file | bytes | gzip bytes |\n| --- | ---: | ---: |")
    for name, size, compressed in rows:
        print(f"| {name} | {size:,} | {compressed:,} |")
    print(f"| **total ({len(rows)} files)** | **{raw:,}** | **{packed:,}** |")
    verdict = "within" if packed <= BUDGET else "OVER"
    print(f"\n{packed / 1024:.1f} KB compressed: {verdict} the {BUDGET // 1024} KB budget.")
    return 0 if packed <= BUDGET else 1


if __name__ == "__main__":
    sys.exit(main())
