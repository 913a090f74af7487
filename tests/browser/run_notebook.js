// Open a notebook in a running JupyterLab with headless Debian chromium, run all cells, click its widgets,
// and report what rendered. Used by tests/test_browser.py; run by hand:
//   node tests/browser/run_notebook.js '{"url": "http://127.0.0.1:8888", "token": "...",
//     "notebook": "00_quickstart.ipynb", "shots": "/tmp/shots", "timeout_s": 600}'
// Optional: "slider_keys": n (press ArrowRight n times on the first slider; negative: ArrowLeft), "click":
// "Measure d'" (click that button and wait for its callback); without "click", a "Generate" button is clicked.
// Prints one JSON line: {"ok", "plots", "cells", "errors", "clicked", "answers", "screenshots", "log"}.
// Needs JupyterLab started with --LabApp.expose_app_in_browser=True (window.jupyterapp).
"use strict";
const path = require("path");
const { chromium } = require(path.join(__dirname, "node_modules", "playwright-core"));

const opts = JSON.parse(process.argv[2]);
const log = [];
const note = (m) => log.push(`${((Date.now() - t0) / 1000).toFixed(1)}s ${m}`);
const t0 = Date.now();
const deadline = t0 + (opts.timeout_s || 600) * 1000;
const left = () => Math.max(1000, deadline - Date.now());

async function main() {
  const browser = await chromium.launch({
    executablePath: opts.chromium || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
    ],
  });
  const result = { ok: false, plots: 0, cells: 0, errors: [], clicked: false, answers: "", screenshots: [], log };
  try {
    const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
    page.on("pageerror", (e) => note(`pageerror: ${e.message.slice(0, 200)}`));
    const shot = async (name) => {
      const file = path.join(opts.shots, `${name}.png`);
      await page.screenshot({ path: file });
      result.screenshots.push(file);
    };
    await page.goto(`${opts.url}/lab/tree/${opts.notebook}?token=${opts.token}`, { timeout: left() });
    await page.waitForFunction(() => window.jupyterapp && document.querySelector(".jp-Notebook .jp-Cell"),
      null, { timeout: left() });
    note("notebook open");
    // wait for the kernel, then run every cell
    await page.waitForFunction(() => {
      const w = window.jupyterapp.shell.currentWidget;
      return w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel &&
        w.sessionContext.session.kernel.connectionStatus === "connected";
    }, null, { timeout: left(), polling: 500 });
    note("kernel connected");
    await page.evaluate(() => window.jupyterapp.commands.execute("notebook:run-all-cells"));
    note("run all");
    // done when no cell shows [*] and every code cell has an execution count
    await page.waitForFunction(() => {
      const w = window.jupyterapp.shell.currentWidget;
      const cells = w.content.widgets.filter((c) => c.model.type === "code");
      const busy = [...document.querySelectorAll(".jp-InputArea-prompt")].some((p) => p.textContent.includes("*"));
      return !busy && cells.length > 0 && cells.every((c) => c.model.executionCount !== null);
    }, null, { timeout: left(), polling: 1000 });
    note("all cells ran");
    result.cells = await page.evaluate(() =>
      window.jupyterapp.shell.currentWidget.content.widgets.filter((c) => c.model.type === "code").length);
    result.errors = await page.evaluate(() => {
      const out = [];
      for (const c of window.jupyterapp.shell.currentWidget.content.widgets) {
        if (c.model.type !== "code") continue;
        for (let i = 0; i < c.model.outputs.length; i++) {
          const o = c.model.outputs.get(i).toJSON();
          if (o.output_type === "error") out.push(`${o.ename}: ${o.evalue}`);
        }
      }
      return out;
    });
    // a rendered plotly figure: an svg with plotted data inside a .js-plotly-plot element
    await page.waitForSelector(".js-plotly-plot .main-svg", { timeout: Math.min(left(), 120000) });
    result.plots = await page.locator(".js-plotly-plot").count();
    const plot = page.locator(".js-plotly-plot").first();
    await plot.scrollIntoViewIfNeeded();
    await page.waitForTimeout(1500);
    await shot("01_first_plot");
    // move the first slider with the keyboard, as a user would (its observe callback runs in the kernel)
    if (opts.slider_keys) {
      const handle = page.locator(".widget-slider .noUi-handle").first();
      await handle.scrollIntoViewIfNeeded();
      await handle.focus();
      for (let i = 0; i < Math.abs(opts.slider_keys); i++) {
        await page.keyboard.press(opts.slider_keys > 0 ? "ArrowRight" : "ArrowLeft");
        await page.waitForTimeout(150);
      }
      await page.waitForTimeout(3000);
      note(`slider moved ${opts.slider_keys} steps`);
      await shot("02_slider_moved");
    }
    // click a button by its label; wait until the kernel's callback has disabled and re-enabled it
    if (opts.click) {
      const label = opts.click;
      const button = page.locator("button.jupyter-button", { hasText: label }).first();
      await button.scrollIntoViewIfNeeded();
      await button.click();
      result.clicked = true;
      note(`clicked ${label}`);
      await page.waitForFunction((l) => [...document.querySelectorAll("button.jupyter-button")]
        .some((b) => b.disabled || !b.textContent.includes(l)), label, { timeout: 60000 }).catch(() => null);
      await page.waitForFunction((l) => [...document.querySelectorAll("button.jupyter-button")]
        .some((b) => !b.disabled && b.textContent.trim() === l), label, { timeout: left(), polling: 1000 });
      note(`${label} done`);
      await page.waitForTimeout(2000);
      await shot("02_clicked");
    }
    // click a widget button in the real front end (the kernel runs its callback) and wait for the answer
    const button = page.locator("button.jupyter-button", { hasText: "Generate" });
    if (!opts.click && (await button.count())) {
      await button.first().scrollIntoViewIfNeeded();
      await button.first().click();
      result.clicked = true;
      note("clicked Generate");
      const answers = page.locator(".widget-html table");
      await answers.first().waitFor({ timeout: Math.min(left(), 300000) });
      result.answers = (await answers.first().innerText()).slice(0, 500);
      await answers.first().scrollIntoViewIfNeeded();
      await page.waitForTimeout(500);
      await shot("02_generated");
    }
    // every plot, one screenshot each
    const n = Math.min(result.plots, opts.max_shots || 6);
    for (let i = 0; i < n; i++) {
      await page.locator(".js-plotly-plot").nth(i).scrollIntoViewIfNeeded();
      await page.waitForTimeout(700);
      await shot(`03_plot_${i}`);
    }
    await page.evaluate(() => window.jupyterapp.commands.execute("docmanager:save"));
    result.ok = result.errors.length === 0 && result.plots > 0;
  } catch (e) {
    result.errors.push(`driver: ${e.message.split("\n")[0]}`);
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(result));
}

main();
