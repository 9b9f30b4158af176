"""Write the pictures of docs/concepts.md and docs/reports.md from a recorded benchmark run.

    python docs/figures.py outputs/demo/store [RUN] [--classes 5 8]

The class strips, the training curves and the precision-recall scatter are the report's own PNGs; the tables are a screenshot of the
report's HTML in headless chromium (skipped, with a message, where chromium or playwright is missing).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from tint_core.pipeline.runs import find_run
from tint_core.report import collect_report, to_html

IMAGES = Path(__file__).resolve().parent / "images"


def _screenshot_tables(html: str, target: Path) -> None:
    """The report's first screen (title, results, variance and plan) as a PNG."""
    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        print(f"chromium or playwright missing: {target.name} not written")
        return
    with tempfile.TemporaryDirectory() as folder:
        page_file = Path(folder) / "report.html"
        page_file.write_text(html, encoding="utf-8")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            page.goto(page_file.as_uri())
            page.screenshot(path=str(target))
            browser.close()
    print(f"wrote {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", help="store URL of the run")
    parser.add_argument("run", nargs="?", default="latest", help="run id, its first characters, name, or 'latest'")
    parser.add_argument("--classes", nargs="+", default=["5", "8"], help="classes of episode 0 to draw")
    args = parser.parse_args()
    report = collect_report(find_run(args.store, args.run), with_history=False)
    IMAGES.mkdir(exist_ok=True)
    strips = dict(report.strips)
    missing = sorted(set(args.classes) - set(strips))
    if missing:
        parser.error(f"episode 0 has no class {', '.join(missing)}; it has {', '.join(strips)}")
    for name in args.classes:
        (IMAGES / f"concepts-class-{name}.png").write_bytes(strips[name])
        print(f"wrote {IMAGES / f'concepts-class-{name}.png'}")
    for name, picture in (("concepts-curves.png", report.curves), ("concepts-quality.png", report.quality)):
        if picture:
            (IMAGES / name).write_bytes(picture)
            print(f"wrote {IMAGES / name}")
    _screenshot_tables(to_html(report), IMAGES / "report-tables.png")


if __name__ == "__main__":
    main()
