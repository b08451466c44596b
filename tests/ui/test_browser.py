"""End to end in headless Chromium: type a prompt, click Generate, get a video with sound.

Needs Debian's `chromium` (`.ci/run` installs it) and Playwright from PyPI, which drives
that browser instead of downloading its own.
"""

from __future__ import annotations

import re
import shutil

import pytest
from ui_helpers import P

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine "
                                "(apt-get install chromium; .ci/run installs it)")

# In the page: decode the <video>'s own source with the browser's audio decoder.
DECODED_SOUND = """async (video) => {
    const bytes = await (await fetch(video.currentSrc)).arrayBuffer();
    const sound = await new OfflineAudioContext(1, 1, 16000).decodeAudioData(bytes);
    return {seconds: sound.duration, loudest: Math.max(...sound.getChannelData(0).map(Math.abs))};
}"""


def test_type_a_prompt_click_generate_and_the_video_has_sound(server):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page()
            page.goto(server.local_url)
            page.locator("#prompt textarea").fill(P)
            page.get_by_label("Steps").fill("2")
            page.get_by_label("Duration (s)").fill("0.5")
            page.locator("#generate").click()
            status = page.locator("#status").get_by_role("textbox")
            expect(status).to_have_value(re.compile("^wrote clip-"), timeout=120_000)
            video = page.locator("#result video")
            expect(video).to_have_attribute("src", re.compile(r"clip-\d+\.mp4$"), timeout=30_000)
            sound = video.evaluate(DECODED_SOUND)
            assert 0.4 < sound["seconds"] < 0.7 and sound["loudest"] > 0
        finally:
            browser.close()
