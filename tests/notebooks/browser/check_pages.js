// Open static pages (`make pages`, slicedim_lab/viz/pages.py) from disk in headless Debian chromium with the
// network blocked: every request that is not a file: URL is aborted (and recorded), host names resolve to
// nothing. Per page: wait until every figure is drawn, then report what rendered. Used by
// tests/notebooks/test_notebooks_browser.py; by hand:
//   node tests/notebooks/browser/check_pages.js '{"pages": ["/abs/site/05_tokens.html"], "shots": "/tmp/s"}'
// Prints one JSON line: a list of {"page", "figures" (div.sdl-figure), "drawn" (of those, with a plotly svg),
// "plots" (every .js-plotly-plot with an svg, e.g. report.html's), "widgets" (rendered widget views),
// "sliders" ([label, readout]), "token_tip" (the hover card of the first coloured token, if any),
// "blocked" (aborted URLs), "errors" (page errors, console errors, pages.js errors), "screenshot"}.
"use strict";
const path = require("path");
const fs = require("fs");
const { chromium } = require(path.join(__dirname, "node_modules", "playwright-core"));

const opts = JSON.parse(process.argv[2]);
const timeoutMs = (opts.timeout_s || 60) * 1000;

async function checkPage(context, file) {
  const page = await context.newPage();
  const result = { page: file, figures: 0, drawn: 0, plots: 0, widgets: 0, sliders: [], token_tip: "",
                   blocked: [], errors: [], screenshot: "" };
  page.on("pageerror", (e) => result.errors.push(`pageerror: ${e.message.slice(0, 300)}`));
  page.on("console", (m) => { if (m.type() === "error") result.errors.push(`console: ${m.text().slice(0, 300)}`); });
  page.on("requestfailed", (r) => { if (!r.url().startsWith("file:")) result.blocked.push(r.url()); });
  try {
    await page.goto("file://" + path.resolve(file), { waitUntil: "load", timeout: timeoutMs });
    // done when the figure count has settled and every figure is drawn (widgets render after "load")
    let last = -1;
    const t0 = Date.now();
    while (Date.now() - t0 < timeoutMs) {
      const s = await page.evaluate(() => {
        const figs = document.querySelectorAll(".sdl-figure").length;
        const drawn = [...document.querySelectorAll(".sdl-figure")].filter((f) => f.querySelector(".main-svg")).length;
        const views = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length;
        const rendered = document.querySelectorAll(".widget-subarea").length;
        return { figs, drawn, views, rendered };
      });
      const key = JSON.stringify(s);
      if (s.drawn === s.figs && s.rendered >= s.views && key === last) break;
      last = key;
      await page.waitForTimeout(750);
    }
    Object.assign(result, await page.evaluate(() => ({
      figures: document.querySelectorAll(".sdl-figure").length,
      drawn: [...document.querySelectorAll(".sdl-figure")].filter((f) => f.querySelector(".main-svg")).length,
      plots: [...document.querySelectorAll(".js-plotly-plot")].filter((f) => f.querySelector(".main-svg")).length,
      widgets: document.querySelectorAll(".widget-subarea").length,
      sliders: [...document.querySelectorAll(".widget-slider")].map((s) => [
        (s.querySelector("label.widget-label") || {}).textContent || "",
        ((s.querySelector(".widget-readout") || {}).textContent || "").trim()]),
      pageErrors: (window.sdlPages || { errors: [] }).errors,
    })));
    result.errors.push(...result.pageErrors.map((e) => `pages.js: ${e}`));
    delete result.pageErrors;
    const tok = page.locator(".sdl-tok[data-tip]").first();
    if (await tok.count()) {
      await tok.scrollIntoViewIfNeeded();
      await tok.hover();
      result.token_tip = await tok.evaluate((el) => getComputedStyle(el, "::after").content);
    }
    if (opts.shots) {
      fs.mkdirSync(opts.shots, { recursive: true });
      result.screenshot = path.join(opts.shots, path.basename(file, ".html") + ".png");
      await page.screenshot({ path: result.screenshot, fullPage: true });
    }
  } catch (e) {
    result.errors.push(`driver: ${e.message.split("\n")[0]}`);
  } finally {
    await page.close();
  }
  return result;
}

async function main() {
  const browser = await chromium.launch({
    executablePath: opts.chromium || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
      "--host-resolver-rules=MAP * ~NOTFOUND", "--allow-file-access-from-files"],
  });
  const results = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    // the network is blocked: only file: URLs load
    await context.route("**/*", (route) => {
      const url = route.request().url();
      return url.startsWith("file:") || url.startsWith("data:") || url.startsWith("blob:")
        ? route.continue() : route.abort("blockedbyclient");
    });
    for (const file of opts.pages) results.push(await checkPage(context, file));
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(results));
}

main().catch((e) => { console.error(e.message); process.exit(1); });
