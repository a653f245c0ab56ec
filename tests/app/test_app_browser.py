"""End to end: the real API and the real Streamlit server, driven by headless Chromium."""

from __future__ import annotations

import re

import httpx
import pytest
from app_servers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO_ROOT,
    api_command,
    app_command,
    free_port,
    running,
)

INCOME_LABEL = "Median income (tens of thousands of USD)"


@pytest.mark.e2e
def test_browser_fills_the_form_and_reads_the_price(champion_dir, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    api_port, app_port = free_port(), free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    app_url = f"http://127.0.0.1:{app_port}"
    api_env = {"MODEL_SOURCES": "local", "LOCAL_MODEL_DIR": str(champion_dir)}
    app_env = {"API_URL": api_url, "PORT": str(app_port), "HOST": "127.0.0.1"}
    shots = REPO_ROOT / "test-output"
    shots.mkdir(exist_ok=True)

    with (
        running(
            api_command(api_port),
            env=api_env,
            health_url=f"{api_url}/ready",
            log=tmp_path / "api.log",
        ),
        running(
            app_command(),
            env=app_env,
            health_url=f"{app_url}/_stcore/health",
            log=tmp_path / "app.log",
        ),
    ):
        contract = httpx.get(f"{api_url}/api/v1/contract", timeout=30).json()
        income_rule = contract["features"]["median_income"]
        income = round(max(income_rule["min"], contract["example"]["median_income"] / 2), 1)
        instance = dict(contract["example"], median_income=income)

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1800})
                page.goto(app_url)
                field = page.get_by_label(INCOME_LABEL, exact=True)
                field.wait_for(timeout=60_000)
                field.fill(str(income))
                field.press("Tab")
                page.get_by_role("button", name="Predict price").click()
                metric = page.get_by_test_id("stMetric").filter(
                    has_text="Predicted median house value"
                )
                value = metric.get_by_test_id("stMetricValue")
                expect(value).to_have_text(re.compile(r"^\$[\d,]+$"), timeout=60_000)
                shown = value.inner_text()
                band = page.get_by_test_id("stMetric").filter(has_text="prediction interval")
                shown_interval = band.get_by_test_id("stMetricValue").inner_text()
                # The map draws after the price; wait for its canvas so the screenshot shows it.
                page.get_by_test_id("stDeckGlJsonChart").locator("canvas").first.wait_for(
                    timeout=30_000
                )
                page.screenshot(path=str(shots / "app_e2e.png"), full_page=True)

                # The Monitoring tab draws the API's live drift (the price above is in it).
                page.get_by_role("tab", name="Monitoring").click()
                expect(page.get_by_text("Drift against the training data")).to_be_visible(
                    timeout=30_000
                )
                expect(page.get_by_text("nothing is judged yet")).to_be_visible(timeout=30_000)
                page.get_by_test_id("stVegaLiteChart").last.wait_for(timeout=30_000)
                expect(page.get_by_text("Shadow challenger", exact=True)).to_be_visible()
                page.screenshot(path=str(shots / "app_monitoring.png"), full_page=True)
            finally:
                browser.close()

        direct = httpx.post(
            f"{api_url}/api/v1/predict", json={"instances": [instance]}, timeout=30
        ).json()
        expected = direct["predictions"][0]["predicted_price"]
        assert shown == f"${expected:,.0f}"
        interval = direct["predictions"][0]["interval"]
        assert shown_interval == f"${interval['low']:,.0f} to ${interval['high']:,.0f}"
        low, high = contract["target_range"]["min"], contract["target_range"]["max"]
        assert low * 0.5 <= float(shown.strip("$").replace(",", "")) <= high * 1.5
    assert (shots / "app_e2e.png").stat().st_size > 10_000
    assert (shots / "app_monitoring.png").stat().st_size > 10_000
