"""docs/ui.png: the page after one clip, in headless Chromium (as tests/ui/test_browser.py).

    python recipes/ui_screenshot.py [-o docs/ui.png] [--attention docs/ui-attention.png]

Needs `duet[ui]`, Playwright and a system chromium (`apt-get install chromium`).
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile

from playwright.sync_api import expect, sync_playwright

from duet.ui.server import launch

PROMPT = "a red rubber ball bounces on a wooden floor <AUDCAP>low thuds<ENDAUDCAP>"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", default="docs/ui.png")
    p.add_argument("--attention", default="docs/ui-attention.png",
                   help="also save the attention tab here")
    p.add_argument("--port", type=int, default=7861)
    args = p.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("no chromium on this machine: apt-get install chromium")
    server = launch([], port=args.port, out_dir=tempfile.mkdtemp(prefix="duet-ui-shot-"))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server.local_url)
            page.locator("#prompt textarea").fill(PROMPT)
            page.get_by_label("Seed").fill("3")
            page.locator("#generate").click()
            status = page.locator("#status").get_by_role("textbox")
            expect(status).to_have_value(re.compile("^wrote clip-"), timeout=300_000)
            page.screenshot(path=args.output, full_page=True)
            page.get_by_role("tab", name="Cross-modal attention").click()
            expect(page.locator("#attention img")).to_be_visible()
            page.screenshot(path=args.attention, full_page=True)
            browser.close()
    finally:
        server.close()
    print(f"wrote {args.output} and {args.attention}")


if __name__ == "__main__":
    main()
