"""The page in a real headless Chromium (Debian's chromium + chromium-driver, via Selenium).

Two browser sessions race for the last seat: one is booked, the other is told
"full" — and both boards update live. Set ``BOOKING_SCREENSHOTS=docs`` to
(re)write the screenshots in ``docs/booking-*.png``.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from examples.booking.auth import mint_token
from tests.booking._serve import ROOT, _env, server
from tests.booking.conftest import SECRET, token

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
OCC = "sunrise-yoga"
CLICK_AT = """
const [occurrence, at] = arguments;
const button = document.querySelector(`#board tr[data-occurrence="${occurrence}"] button.book`);
setTimeout(() => button.click(), at - Date.now());
"""


def _need_chromium() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if not missing:
        return
    msg = f"{', '.join(missing)} missing: apt-get install -y chromium chromium-driver"
    if os.environ.get("CI") == "true":
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


@pytest.fixture
def browsers(tmp_path):
    """A factory of headless Chromium sessions (each its own profile: its own sessionStorage)."""
    _need_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    made = []

    def make():
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in (
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--window-size=1000,640",
            f"--user-data-dir={tmp_path / f'profile-{len(made)}'}",
        ):
            options.add_argument(arg)
        # An explicit driver path: Selenium Manager is never asked to download anything.
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        made.append(driver)
        return driver

    yield make
    for driver in made:
        driver.quit()


def _wait(driver, predicate, timeout: float = 20):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(predicate)


def _sign_in(driver, base: str, tok: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(base + "/")
    driver.find_element(By.ID, "token").send_keys(tok)
    driver.find_element(By.ID, "signin").click()
    _wait(driver, lambda d: d.find_element(By.ID, "live").text == "live")


def _row(driver, occurrence: str):
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, f'#board tr[data-occurrence="{occurrence}"]')
    return rows[0] if rows else None


def _cell(driver, occurrence: str, cls: str) -> str | None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        row = _row(driver, occurrence)
        return None if row is None else row.find_element(By.CSS_SELECTOR, "td." + cls).text
    except StaleElementReferenceException:  # the board was redrawn meanwhile
        return None


def _message(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "message").text


def _shot(driver, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"booking-{name}.png"
    driver.save_screenshot(str(path))
    target = os.environ.get("BOOKING_SCREENSHOTS")
    if target:
        shutil.copy(path, ROOT / target / path.name)


def test_two_browsers_race_for_the_last_seat(browsers, tmp_path):
    from selenium.webdriver.common.by import By

    env = _env(tmp_path, EVSRC_BOOKING_SECRET=SECRET)
    with server("memory:", env) as (base, _proc):
        admin = token("coach", admin=True)
        r = httpx.post(base + "/schedule", json={"occurrence": OCC, "capacity": 2}, headers=admin)
        assert r.status_code == 201
        httpx.post(base + "/schedule", json={"occurrence": "pilates", "capacity": 8}, headers=admin)
        r = httpx.post(base + "/book", json={"occurrence": OCC}, headers=token("carol"))
        assert r.json()["seat"] == 1  # one seat left

        ann, bob = browsers(), browsers()
        login = browsers()
        login.get(base + "/")
        _wait(login, lambda d: d.find_element(By.ID, "signin").is_displayed())
        _shot(login, tmp_path, "signin")

        _sign_in(ann, base, mint_token(SECRET, "ann"))
        _sign_in(bob, base, mint_token(SECRET, "bob"))
        for b in (ann, bob):
            _wait(b, lambda d: _cell(d, OCC, "seats") == "1")
            assert "Signed in as" in b.find_element(By.ID, "who").text

        # Both pages show a free seat; both click "Book" at the same instant: each page
        # sets a timer for one wall-clock time (one machine, one clock), well before either
        # booking's live update could reach the other page.
        at = time.time() * 1000 + 500
        for b in (ann, bob):
            b.execute_script(CLICK_AT, OCC, at)
        for b in (ann, bob):
            _wait(b, lambda d: _message(d) != "")
        messages = sorted(_message(b) for b in (ann, bob))
        assert messages[0] == f"Booked: seat 2 on {OCC}."
        assert messages[1] == f"Sorry, {OCC} is full."
        winner, loser = (ann, bob) if _message(ann).startswith("Booked") else (bob, ann)

        # The boards update live: no seats left, the winner holds seat 2.
        for b in (ann, bob):
            _wait(b, lambda d: _cell(d, OCC, "seats") == "0")
        _wait(winner, lambda d: _cell(d, OCC, "you") == "seat 2")
        assert _cell(loser, OCC, "you") == ""
        r = httpx.get(base + "/roster", params={"occurrence": OCC}, headers=admin)
        assert len(r.json()["roster"]) == 2

        # The loser joins the waitlist; the winner cancels; the loser is promoted, live.
        _row(loser, OCC).find_element(By.CSS_SELECTOR, "button.waitlist").click()
        _wait(loser, lambda d: "number 1 on the waitlist" in _message(d))
        _wait(loser, lambda d: _cell(d, OCC, "you") == "waitlist #1")
        _shot(loser, tmp_path, "waitlist")
        _row(winner, OCC).find_element(By.CSS_SELECTOR, "button.cancel").click()
        _wait(winner, lambda d: _message(d) == f"Cancelled your seat on {OCC}.")
        _wait(loser, lambda d: _cell(d, OCC, "you") == "seat 2")

        # An admin schedules from the page; everyone's board shows it.
        coach = browsers()
        _sign_in(coach, base, mint_token(SECRET, "coach", admin=True))
        coach.find_element(By.ID, "schedule-occurrence").send_keys("evening-run")
        coach.find_element(By.ID, "schedule-capacity").send_keys("12")
        coach.find_element(By.ID, "schedule-submit").click()
        _wait(coach, lambda d: _message(d) == "Scheduled evening-run with 12 seats.")
        _wait(loser, lambda d: _cell(d, "evening-run", "seats") == "12")
        assert not loser.find_element(By.ID, "admin-panel").is_displayed()
        _shot(coach, tmp_path, "admin")
        _shot(loser, tmp_path, "board")


def test_a_forged_token_is_refused_by_the_page(browsers, tmp_path):
    from selenium.webdriver.common.by import By

    env = _env(tmp_path, EVSRC_BOOKING_SECRET=SECRET)
    with server("memory:", env) as (base, _proc):
        b = browsers()
        b.get(base + "/")
        b.find_element(By.ID, "token").send_keys(mint_token("x" * 40, "mallory", admin=True))
        b.find_element(By.ID, "signin").click()
        _wait(b, lambda d: "refused" in d.find_element(By.ID, "signin-error").text)
        assert b.find_element(By.ID, "signin").is_displayed()
