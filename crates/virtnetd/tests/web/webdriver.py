#!/usr/bin/env python3
"""One W3C WebDriver step against chromedriver, for crates/virtnetd/tests/web_console.rs.

Python's standard library only (no selenium, no downloaded browser): Debian's chromium and
chromium-driver. Each call does one step and prints its result as JSON on stdout; the session
id lives in a file so that the Rust test can interleave browser steps with its own (CLI, DHCP
client). Run it inside the test's network namespace: chromedriver and the console listen on
that namespace's loopback.

  webdriver.py DRIVER_URL SESSION_FILE new USER_DATA_DIR
  webdriver.py DRIVER_URL SESSION_FILE open URL
  webdriver.py DRIVER_URL SESSION_FILE wait JS_EXPRESSION SECONDS   (polls until truthy)
  webdriver.py DRIVER_URL SESSION_FILE eval JS_EXPRESSION
  webdriver.py DRIVER_URL SESSION_FILE click CSS_SELECTOR
  webdriver.py DRIVER_URL SESSION_FILE screenshot PNG_FILE
  webdriver.py DRIVER_URL SESSION_FILE quit
"""
import base64
import json
import sys
import time
import urllib.error
import urllib.request

CHROMIUM = "/usr/bin/chromium"
# Headless as root in a namespace with nothing but loopback: no sandbox (root), nothing that
# phones home (updates, sync, background networking, QUIC).
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1600",
]


def call(driver, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(driver + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return json.load(resp)["value"]
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")
        sys.exit(f"webdriver {method} {path}: HTTP {e.code}: {detail}")


def script(driver, sid, expr):
    return call(driver, "POST", f"/session/{sid}/execute/sync",
                {"script": f"return ({expr});", "args": []})


def main():
    driver, session_file, step, *rest = sys.argv[1:]
    if step == "new":
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM,
                                   "args": ARGS + [f"--user-data-dir={rest[0]}"]},
        }}}
        value = call(driver, "POST", "/session", caps)
        with open(session_file, "w") as f:
            f.write(value["sessionId"])
        print(json.dumps(value["sessionId"]))
        return
    with open(session_file) as f:
        sid = f.read().strip()
    if step == "open":
        call(driver, "POST", f"/session/{sid}/url", {"url": rest[0]})
        print(json.dumps(call(driver, "GET", f"/session/{sid}/url")))
    elif step == "wait":
        deadline = time.monotonic() + float(rest[1])
        while True:
            value = script(driver, sid, rest[0])
            if value:
                print(json.dumps(value))
                return
            if time.monotonic() > deadline:
                sys.exit(f"timed out waiting for: {rest[0]}")
            time.sleep(0.2)
    elif step == "eval":
        print(json.dumps(script(driver, sid, rest[0])))
    elif step == "click":
        found = call(driver, "POST", f"/session/{sid}/element",
                     {"using": "css selector", "value": rest[0]})
        element = next(iter(found.values()))
        call(driver, "POST", f"/session/{sid}/element/{element}/click", {})
        print(json.dumps(True))
    elif step == "screenshot":
        png = base64.b64decode(call(driver, "GET", f"/session/{sid}/screenshot"))
        with open(rest[0], "wb") as f:
            f.write(png)
        print(json.dumps(len(png)))
    elif step == "quit":
        call(driver, "DELETE", f"/session/{sid}")
        print(json.dumps(True))
    else:
        sys.exit(f"unknown step {step}")


if __name__ == "__main__":
    main()
