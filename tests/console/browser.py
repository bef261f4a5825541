"""Headless Chromium driven over the DevTools protocol (its websocket): open pages, run
script in them, wait for what a user would see, take screenshots at desktop and phone width."""

import asyncio
import base64
import itertools
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.chromium import CHROMIUM, headless

ROOT = Path(__file__).resolve().parents[2]
# Written by every run for a reviewer to look at; not committed (.gitignore: build/).
SCREENSHOTS = ROOT / "build" / "console-screenshots"
WIDTHS = {"desktop": (1280, 860, False), "phone": (390, 844, True)}


class PageError(AssertionError):
    pass


class Page:
    """One tab, attached through a flat DevTools session."""

    def __init__(self, socket: ClientConnection, session_id: str) -> None:
        self.socket = socket
        self.session_id = session_id
        self.ids = itertools.count(1)
        self.answers: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.socket:
            message = json.loads(raw)
            future = self.answers.pop(message.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(message)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.answers[number] = future
        command = {"id": number, "method": method, "params": params, "sessionId": self.session_id}
        await self.socket.send(json.dumps(command))
        answer = await asyncio.wait_for(future, 30)
        if "error" in answer:
            raise PageError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise PageError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, within: float = 20) -> Any:
        """The expression's value once it is truthy (a failure after ``within`` seconds)."""
        async with asyncio.timeout(within):
            while True:
                with suppress(PageError):
                    if value := await self.evaluate(expression):
                        return value
                await asyncio.sleep(0.05)

    async def _new_document(self, action: str) -> None:
        await self.evaluate("window.__old_document = true")
        await self.evaluate(action)
        await self.wait_for("!window.__old_document && document.readyState === 'complete'")

    async def goto(self, url: str) -> None:
        await self._new_document(f"location.href = {json.dumps(url)}")

    async def submit(self, selector: str) -> None:
        """Click a submit button and wait for the page the form leads to."""
        await self._new_document(f"document.querySelector({json.dumps(selector)}).click()")

    async def click_link(self, text: str) -> None:
        await self._new_document(
            "Array.from(document.querySelectorAll('a'))"
            f".find(a => a.textContent.trim() === {json.dumps(text)}).click()"
        )

    async def fill(self, selector: str, value: str) -> None:
        await self.evaluate(
            f"document.querySelector({json.dumps(selector)}).value = {json.dumps(value)}"
        )

    async def press_tab(self) -> None:
        for kind in ("rawKeyDown", "keyUp"):
            await self.send(
                "Input.dispatchKeyEvent",
                type=kind,
                key="Tab",
                code="Tab",
                windowsVirtualKeyCode=9,
            )

    async def text(self, selector: str = "main") -> str:
        value = await self.evaluate(f"document.querySelector({json.dumps(selector)}).innerText")
        return re.sub(r"\s+", " ", str(value))

    async def screenshot(self, name: str) -> None:
        """The page at desktop and at phone width, into build/console-screenshots/."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for label, (width, height, mobile) in WIDTHS.items():
            await self.send(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=mobile,
            )
            shot = await self.send("Page.captureScreenshot", format="png")
            (SCREENSHOTS / f"{name}-{label}.png").write_bytes(base64.b64decode(shot["data"]))
        await self.send("Emulation.clearDeviceMetricsOverride")


@asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[Page]:
    """A headless Chromium (tests/chromium.py) with one blank tab."""
    assert CHROMIUM is not None
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *headless(profile),
        "--hide-scrollbars",
        "--window-size=1280,860",
        "--remote-debugging-port=0",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        async with asyncio.timeout(30):
            while True:
                line = (await process.stderr.readline()).decode()
                assert line, "Chromium exited before it listened"
                if found := re.search(r"DevTools listening on (ws://\S+)", line):
                    break
        # Chromium's log must not fill the pipe and block it.
        drain = asyncio.create_task(process.stderr.read())
        async with connect(found.group(1), max_size=None) as socket:
            setup = Page(socket, session_id="")
            target = await _browser_command(setup, "Target.createTarget", url="about:blank")
            attached = await _browser_command(
                setup, "Target.attachToTarget", targetId=target["targetId"], flatten=True
            )
            setup.reader.cancel()
            page = Page(socket, attached["sessionId"])
            await page.send("Page.enable")
            try:
                yield page
            finally:
                page.reader.cancel()
        drain.cancel()
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def _browser_command(page: Page, method: str, **params: Any) -> dict[str, Any]:
    """A command to the browser itself (no session)."""
    number = next(page.ids)
    future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    page.answers[number] = future
    await page.socket.send(json.dumps({"id": number, "method": method, "params": params}))
    answer = await asyncio.wait_for(future, 30)
    if "error" in answer:
        raise PageError(f"{method}: {answer['error']}")
    result: dict[str, Any] = answer["result"]
    return result
