"""The console in a real browser: Debian's chromium, driven through chromium-driver
by selenium. Run by tests/e2e/console.rs as `browser.py <scenario> <config.json>`;
prints what it did, exits non-zero with the reason when something is not as it should
be.

Scenarios:
  flow   log in, the dashboard's numbers, filter servers and open one, verify as an
         analyst, refused as a viewer, dismiss an alert, log out; screenshots.
  xss    hostile names, commands and host names render as inert text.
  csrf   a form on another origin posting to the console is refused.
"""

import http.server
import json
import os
import sys
import threading
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait


class Failed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failed(message)


def browser(width=1280, height=900):
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
    ):
        options.add_argument(arg)
    service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    return driver


def wait(driver, condition, what, timeout=15, ignored=()):
    """Wait until `condition` holds; errors of the `ignored` kinds count as "not yet"."""
    try:
        return WebDriverWait(driver, timeout, ignored_exceptions=ignored).until(condition)
    except Exception as e:  # noqa: BLE001 - say what was awaited, and what went wrong
        cause = getattr(e, "msg", None) or repr(e)
        raise Failed(f"waited up to {timeout}s for {what}; at {driver.current_url}: {driver.title!r}: {cause}") from e


def gone(element):
    """Whether `element` no longer belongs to the page the browser shows. chromedriver
    says so with a stale reference, or, while the next document is being attached,
    with an inspector error that the node "does not belong to the document"."""
    try:
        element.is_enabled()
        return False
    except StaleElementReferenceException:
        return True
    except WebDriverException as e:
        if "does not belong to the document" in (e.msg or ""):
            return True
        raise


def goes(driver, action, what):
    """Do `action`, which loads a new page, and wait until the new one is there
    (reading before that would read the old one): the address changed or the old page's
    root is gone, and the new document is parsed. Errors from a browser caught between
    two documents are retried until the deadline, and the last one is reported."""
    old, url = driver.find_element(By.TAG_NAME, "html"), driver.current_url

    def loaded(d):
        left = d.current_url != url or gone(old)
        return left and d.execute_script("return document.readyState") in ("interactive", "complete")

    action()
    wait(driver, loaded, what, ignored=(WebDriverException,))


def texts(driver, css):
    """The texts of the elements `css` selects, read again if the page changed under
    the reading."""
    for _ in range(50):
        try:
            return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]
        except StaleElementReferenceException:
            time.sleep(0.1)
    raise Failed(f"{css} kept changing")


def no_dialog(driver, where):
    try:
        text = driver.switch_to.alert.text
    except NoAlertPresentException:
        return
    raise Failed(f"a dialog opened on {where}: {text!r}")


def title_is(driver, title):
    wait(driver, lambda d: d.title == f"{title} · mcpwatch", f"the page titled {title!r}")


def login(driver, base, email, password):
    driver.get(base + "/ui/login")
    title_is(driver, "Log in")
    driver.find_element(By.NAME, "email").send_keys(email)
    driver.find_element(By.NAME, "password").send_keys(password)
    goes(driver, driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click, "the login")
    title_is(driver, "Dashboard")
    print(f"logged in as {email}")


def logout(driver):
    goes(driver, driver.find_element(By.CSS_SELECTOR, "form[action='/ui/logout'] button").click, "the logout")
    title_is(driver, "Log in")


def shot(driver, cfg, name):
    folder = cfg.get("screenshots")
    if folder:
        os.makedirs(folder, exist_ok=True)
        driver.save_screenshot(os.path.join(folder, f"{name}.png"))


def flow(cfg):
    base = cfg["base"]
    driver = browser()
    try:
        login(driver, base, *cfg["analyst"])
        shown = {
            e.get_attribute("data-stat"): int(e.text)
            for e in driver.find_elements(By.CSS_SELECTOR, "[data-stat]")
        }
        for key, value in cfg["stats"].items():
            check(shown.get(key) == value, f"dashboard {key}: shows {shown.get(key)}, the API says {value}")
        print("dashboard numbers match /dashboard/stats:", cfg["stats"])
        shot(driver, cfg, "dashboard")

        # Filter servers (the select applies itself) and search, then open one.
        goes(driver, driver.find_element(By.LINK_TEXT, "Servers").click, "the servers page")
        title_is(driver, "Servers")
        level = Select(driver.find_element(By.NAME, "risk_level"))
        goes(driver, lambda: level.select_by_value("critical"), "the level filter")
        check("risk_level=critical" in driver.current_url, f"the filter is in the URL: {driver.current_url}")
        levels = set(texts(driver, "#servers td .level"))
        check(levels == {"critical"}, f"filtered to critical, rows show {levels}")
        rows = len(driver.find_elements(By.CSS_SELECTOR, "#servers tbody tr"))
        check(rows == cfg["critical_servers"], f"{rows} critical rows, expected {cfg['critical_servers']}")
        shot(driver, cfg, "servers")
        search = driver.find_element(By.NAME, "search")
        search.clear()
        search.send_keys(cfg["verify_server"])
        goes(driver, driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click, "the search")
        check(f"search={cfg['verify_server']}" in driver.current_url, f"the search is in the URL: {driver.current_url}")
        names = texts(driver, "#servers tbody td:first-child a")
        check(names == [cfg["verify_server"]], f"search found {names}")
        goes(driver, driver.find_element(By.LINK_TEXT, cfg["verify_server"]).click, "the server's page")
        title_is(driver, cfg["verify_server"])
        check(driver.find_elements(By.CSS_SELECTOR, "#findings tbody tr"), "the server's findings are listed")
        print("filtered, searched and opened", cfg["verify_server"])

        # Verify as an analyst.
        verify = driver.find_element(By.XPATH, "//div[@id='verification']//button[text()='Verify']")
        goes(driver, verify.click, "the verification")
        check("done=verified" in driver.current_url, f"verified: {driver.current_url}")
        check("The server is marked as verified." in driver.page_source, "verification is confirmed")
        check(driver.find_element(By.ID, "verification").text.startswith("Verified"), "the server shows verified")
        shot(driver, cfg, "server")
        print("verified as an analyst")

        # Dismiss one alert.
        goes(driver, driver.find_element(By.LINK_TEXT, "Alerts").click, "the alerts page")
        title_is(driver, "Alerts")
        before = len(driver.find_elements(By.CSS_SELECTOR, "#alerts tbody tr"))
        check(before == cfg["open_alerts"], f"{before} open alerts shown, the API has {cfg['open_alerts']}")
        shot(driver, cfg, "alerts")
        dismiss = driver.find_element(By.XPATH, "//table[@id='alerts']//button[text()='Dismiss']")
        goes(driver, dismiss.click, "the dismissal")
        check("done=dismissed" in driver.current_url, f"dismissed: {driver.current_url}")
        after = len(driver.find_elements(By.CSS_SELECTOR, "#alerts tbody tr"))
        check(after == before - 1, f"{after} open alerts after dismissing one of {before}")
        print(f"dismissed an alert: {before} -> {after} open")

        for page, name in (("/ui/agents", "agents"), ("/ui/census", "census"), ("/ui/policy", "policy")):
            driver.get(base + page)
            wait(driver, lambda d: d.find_elements(By.TAG_NAME, "h1"), page)
            shot(driver, cfg, name)
        driver.get(base + "/ui/agents")
        goes(driver, driver.find_element(By.CSS_SELECTOR, "#agents tbody a").click, "the agent's page")
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "dl.facts"), "the agent's facts")
        shot(driver, cfg, "agent")

        # A new alert while a page is open: the page says so, live.
        driver.get(base + "/ui/")
        title_is(driver, "Dashboard")
        wait(driver, lambda d: d.execute_script("return document.visibilityState") == "visible", "a visible page")
        request = urllib.request.Request(
            base + "/mcp/report",
            data=json.dumps(cfg["report"]).encode(),
            headers={"X-API-Key": cfg["agent_key"], "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            check(json.load(answer)["alerts_raised"] == 1, "the new report raises one alert")
        banner = wait(
            driver,
            lambda d: (lambda e: e if e.is_displayed() and "New alert" in e.text else None)(d.find_element(By.ID, "live")),
            "the live banner",
        )
        check(cfg["new_server"] in banner.text, f"the banner names the server: {banner.text!r}")
        print("a new alert appeared live:", banner.text)
        shot(driver, cfg, "live-alert")

        # Log out: the session ends; the pages ask for a login again.
        logout(driver)
        driver.get(base + "/ui/servers")
        title_is(driver, "Log in")
        print("logged out; pages ask for a login")

        # A viewer sees no verify control, and the server refuses the post anyway.
        login(driver, base, *cfg["viewer"])
        driver.get(base + "/ui/servers/" + cfg["verify_server_id"])
        title_is(driver, cfg["verify_server"])
        buttons = driver.find_elements(By.CSS_SELECTOR, "#verification button")
        check(not buttons, "a viewer is shown no verify control")
        token = driver.find_element(By.CSS_SELECTOR, "form[action='/ui/logout'] input[name=_csrf]").get_attribute("value")
        driver.execute_script(
            """
            const f = document.createElement('form');
            f.method = 'post'; f.action = arguments[0];
            for (const [k, v] of [['_csrf', arguments[1]], ['verified', 'false']]) {
              const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.append(i);
            }
            document.body.append(f); f.submit();
            """,
            f"/ui/servers/{cfg['verify_server_id']}/verify",
            token,
        )
        title_is(driver, "Forbidden")
        check("analyst" in driver.find_element(By.CSS_SELECTOR, "p.error").text, "the refusal names the role")
        print("a viewer is refused:", driver.find_element(By.CSS_SELECTOR, "p.error").text)
        goes(driver, driver.find_element(By.LINK_TEXT, "Back to the dashboard").click, "the dashboard")
        title_is(driver, "Dashboard")
        logout(driver)

        # The admin's pages.
        login(driver, base, *cfg["admin"])
        driver.get(base + "/ui/settings/enroll")
        title_is(driver, "Enroll secrets")
        driver.find_element(By.NAME, "name").send_keys("laptops")
        make = driver.find_element(By.CSS_SELECTOR, "form[action='/ui/settings/enroll'] button")
        goes(driver, make.click, "the new enroll secret")
        wait(driver, lambda d: d.find_elements(By.ID, "install-deb"), "the install commands")
        secret = driver.find_element(By.ID, "enroll-secret").text
        check(secret.startswith("mcp_es_"), f"the secret is shown once: {secret[:8]}")
        check(secret in driver.find_element(By.ID, "install-msi").text, "the MSI command carries the secret")
        shot(driver, cfg, "settings-enroll")
        driver.get(base + "/ui/settings/users")
        title_is(driver, "Users")
        shot(driver, cfg, "settings-users")
        driver.get(base + "/ui/settings/audit")
        title_is(driver, "Audit log")
        check("server.verified" in driver.page_source, "the audit log shows the verification")
        shot(driver, cfg, "settings-audit")
        print("admin pages: enroll secret with install commands, users, audit log")
    finally:
        driver.quit()


def xss(cfg):
    base = cfg["base"]
    driver = browser()
    try:
        login(driver, base, *cfg["admin"])
        pages = ["/ui/", "/ui/servers", "/ui/servers?search=" + "img", "/ui/alerts", "/ui/agents", "/ui/census"]
        pages += ["/ui/servers/" + i for i in cfg["server_ids"]]
        pages += ["/ui/agents/" + i for i in cfg["agent_ids"]]
        for page in pages:
            driver.get(base + page)
            wait(driver, lambda d: d.find_elements(By.TAG_NAME, "h1"), page)
            no_dialog(driver, page)
            pwned = driver.execute_script("return window.__pwned === undefined ? null : String(window.__pwned)")
            check(pwned is None, f"a payload ran on {page}: {pwned}")
            images = driver.find_elements(By.TAG_NAME, "img")
            check(not images, f"{page} has an <img> element: {[i.get_attribute('outerHTML') for i in images]}")
            scripts = [s.get_attribute("src") for s in driver.find_elements(By.TAG_NAME, "script")]
            check(all(s and "/ui/assets/console." in s for s in scripts), f"{page} has a script of its own: {scripts}")
            for link in driver.find_elements(By.CSS_SELECTOR, "a[href]"):
                href = link.get_attribute("href") or ""
                check(not href.lower().startswith("javascript:"), f"{page} links to {href!r}")
            body = driver.find_element(By.TAG_NAME, "body").text
            print(f"{page}: inert ({len(body)} characters of text)")
        # The hostile strings are there, as text.
        driver.get(base + "/ui/servers/" + cfg["server_ids"][0])
        wait(driver, lambda d: d.find_elements(By.TAG_NAME, "h1"), "the hostile server")
        body = driver.find_element(By.TAG_NAME, "body").text
        for text in cfg["texts"]:
            check(text in body, f"the text {text!r} is shown as text")
        check(driver.find_element(By.TAG_NAME, "h1").text == cfg["texts"][0], "the title is the name, verbatim")
        driver.get(base + "/ui/agents/" + cfg["agent_ids"][0])
        wait(driver, lambda d: d.find_elements(By.TAG_NAME, "h1"), "the hostile agent")
        check(cfg["hostname"] in driver.find_element(By.TAG_NAME, "h1").text, "the host name is shown as text")
        # Clicking the host name link (to the agent) goes to the agent, never runs script.
        driver.get(base + "/ui/servers/" + cfg["server_ids"][0])
        goes(driver, driver.find_element(By.CSS_SELECTOR, "dl.facts a[href^='/ui/agents/']").click, "the agent link")
        check("/ui/agents/" in driver.current_url, f"the agent's page: {driver.current_url}")
        no_dialog(driver, "after clicking the host name")
        shot(driver, cfg, "hostile-agent")
        print("hostile strings render as inert text")
    finally:
        driver.quit()


def csrf(cfg):
    base = cfg["base"]
    # The attacker's page: another origin, a form that posts to the console by itself.
    attack = f"""<!doctype html><title>win a prize</title>
<form id=f method=post action="{base}/ui/alerts/dismiss-all"></form>
<script>document.getElementById('f').submit()</script>"""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(attack.encode())

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    driver = browser()
    try:
        login(driver, base, *cfg["admin"])
        driver.get(f"http://127.0.0.1:{server.server_address[1]}/")
        wait(driver, lambda d: d.current_url.startswith(base), "the cross-site post to land")
        wait(driver, lambda d: d.find_elements(By.TAG_NAME, "h1"), "the answer")
        answer = driver.find_element(By.TAG_NAME, "body").text
        check("Forbidden" in driver.title or "Log in" in driver.title, f"the cross-site post was answered {driver.title!r}: {answer[:200]}")
        print("the cross-site post was refused:", driver.title, "-", answer.splitlines()[-2:] if answer else "")
        driver.get(base + "/ui/alerts")
        title_is(driver, "Alerts")
        rows = len(driver.find_elements(By.CSS_SELECTOR, "#alerts tbody tr"))
        check(rows == cfg["open_alerts"], f"{rows} open alerts after the attack, {cfg['open_alerts']} before")
        print(f"alerts still open: {rows}")
    finally:
        driver.quit()
        server.shutdown()


def main():
    scenario, path = sys.argv[1], sys.argv[2]
    with open(path) as f:
        cfg = json.load(f)
    try:
        {"flow": flow, "xss": xss, "csrf": csrf}[scenario](cfg)
    except Failed as e:
        print(f"FAILED: {e}")
        sys.exit(1)
    except NoSuchElementException as e:
        print(f"FAILED: an element is missing: {e.msg}")
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
