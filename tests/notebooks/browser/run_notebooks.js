// Open notebooks in a running JupyterLab with headless Debian chromium (one page, one notebook at a time),
// run all cells, move one slider (or click one button) and check that a rendered plotly figure's data
// changed. Used by tests/notebooks/test_notebooks_browser.py; run by hand:
//   node tests/notebooks/browser/run_notebooks.js '{"url": "http://127.0.0.1:8888", "token": "...",
//     "timeout_s": 300, "notebooks": [{"notebook": "00_quickstart.ipynb", "shots": "/tmp/shots",
//     "slider": "site", "keys": 1, "generate": true}]}'
// Per notebook: "slider" (a slider's description, e.g. "layer" or "d'"), "nth" (which slider of that name,
// 0 = first, -1 = last), "keys" (ArrowRight presses on its handle, negative: ArrowLeft), or "click" (a
// button's label) instead of a slider — or "steps", a list of such interactions made one after the other,
// each of which must change a figure; "generate": also click a Generate button and wait for the answers;
// "hover": a CSS selector whose first match is hovered, its ::after content (a hover card) reported.
// The figures compared are those of the widget box holding the control (an explorer's figures).
// Prints one JSON line: a list of {"notebook", "ok", "cells", "plots", "errors", "changed", "value",
// "answers", "screenshots", "log"}. Needs JupyterLab started with --LabApp.expose_app_in_browser=True.
"use strict";
const path = require("path");
const fs = require("fs");
const { chromium } = require(path.join(__dirname, "node_modules", "playwright-core"));

const opts = JSON.parse(process.argv[2]);
let currentNote = () => null; // the log of the notebook being driven

// a digest of every plotly figure's traces inside `root` (typed arrays as plain arrays)
function figureDigests(root) {
  return [...root.querySelectorAll(".js-plotly-plot")].map((gd) => {
    const s = JSON.stringify(gd.data || [], (k, v) => (ArrayBuffer.isView(v) ? Array.from(v) : v));
    let h = 0;
    for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0;
    return `${s.length}:${h}`;
  });
}

async function runOne(page, nb) {
  const t0 = Date.now();
  const deadline = t0 + (opts.timeout_s || 300) * 1000;
  const left = () => Math.max(1000, deadline - Date.now());
  const log = [];
  const note = (m) => log.push(`${((Date.now() - t0) / 1000).toFixed(1)}s ${m}`);
  const result = { notebook: nb.notebook, ok: false, cells: 0, plots: 0, errors: [], changed: false,
                   value: null, values: [], answers: "", hover: "", screenshots: [], log };
  currentNote = note;
  fs.mkdirSync(nb.shots, { recursive: true });
  const shot = async (name) => {
    const file = path.join(nb.shots, `${name}.png`);
    await page.screenshot({ path: file });
    result.screenshots.push(file);
  };
  let panel = null;
  try {
    // open the notebook in this page; the previous one is closed, so it is the only one
    const id = await page.evaluate(async (name) => {
      const w = await window.jupyterapp.commands.execute("docmanager:open", { path: name });
      window.jupyterapp.shell.activateById(w.id);
      return w.id;
    }, nb.notebook);
    panel = page.locator(`[id="${id}"]`);
    // the notebook is found by its id, not as the shell's current widget (which focus can leave empty)
    await page.waitForFunction((i) => {
      const w = window.notebookById(i);
      return w && w.content.widgets.length > 0 && w.sessionContext.session &&
        w.sessionContext.session.kernel && w.sessionContext.session.kernel.connectionStatus === "connected";
    }, id, { timeout: left(), polling: 500 });
    note("kernel connected");
    // run-all acts on the notebook tracker's current widget: the most recently added, this one
    await page.evaluate((i) => {
      window.jupyterapp.shell.activateById(i);
      return window.jupyterapp.commands.execute("notebook:run-all-cells");
    }, id);
    // done when no cell shows [*] and every code cell has an execution count
    await page.waitForFunction((i) => {
      const w = window.notebookById(i);
      const cells = w.content.widgets.filter((c) => c.model.type === "code");
      const busy = [...w.node.querySelectorAll(".jp-InputArea-prompt")].some((p) => p.textContent.includes("*"));
      return !busy && cells.length > 0 && cells.every((c) => c.model.executionCount !== null);
    }, id, { timeout: left(), polling: 500 });
    note("all cells ran");
    [result.cells, result.errors] = await page.evaluate((i) => {
      const cells = window.notebookById(i).content.widgets.filter((c) => c.model.type === "code");
      const errors = [];
      for (const c of cells) {
        for (let i = 0; i < c.model.outputs.length; i++) {
          const o = c.model.outputs.get(i).toJSON();
          if (o.output_type === "error") errors.push(`${o.ename}: ${o.evalue}`);
        }
      }
      return [cells.length, errors];
    }, id);
    // a rendered plotly figure: an svg with plotted data inside a .js-plotly-plot element
    await panel.locator(".js-plotly-plot .main-svg").first().waitFor({ timeout: left() });
    result.plots = await panel.locator(".js-plotly-plot").count();

    // each step: a control, and the widget box around it that holds figures (its explorer)
    const steps = nb.steps || [nb];
    result.changed = true;
    result.values = [];
    for (let k = 0; k < steps.length; k++) {
      const step = steps[k];
      let control;
      if (step.click) {
        control = panel.locator("button.jupyter-button", { hasText: step.click }).first();
      } else {
        const sliders = panel.locator(".widget-slider").filter({
          has: page.locator("label.widget-label", { hasText: new RegExp(`^${step.slider}$`) }) });
        const n = await sliders.count();
        if (!n) throw new Error(`no slider "${step.slider}"`);
        control = sliders.nth(step.nth < 0 ? n + step.nth : step.nth || 0);
      }
      await control.scrollIntoViewIfNeeded();
      const box = await control.evaluateHandle((el) => {
        let b = el.parentElement;
        while (b && !b.querySelector(".js-plotly-plot")) b = b.parentElement;
        return b;
      });
      // settle: the figures' data no longer change on their own
      let before = await box.evaluate(figureDigests);
      for (let i = 0; i < 20; i++) {
        await page.waitForTimeout(500);
        const again = await box.evaluate(figureDigests);
        if (JSON.stringify(again) === JSON.stringify(before)) break;
        before = again;
      }
      if (!before.length) throw new Error("no figure next to the control");
      await shot(`${k}1_before`);
      if (step.click) {
        await control.click();
        note(`clicked ${step.click}`);
      } else {
        const handle = control.locator(".noUi-handle").first();
        await handle.focus();
        for (let i = 0; i < Math.abs(step.keys || 1); i++) {
          await page.keyboard.press((step.keys || 1) > 0 ? "ArrowRight" : "ArrowLeft");
        }
        result.value = (await control.locator(".widget-readout").first().innerText()).trim();
        result.values.push(result.value);
        note(`slider ${step.slider} moved to ${result.value}`);
      }
      let changed = false;
      await page.waitForFunction(([el, old]) => {
        return JSON.stringify(window.figureDigests(el)) !== old;
      }, [box, JSON.stringify(before)], { timeout: left(), polling: 500 }).then(() => {
        changed = true;
      }).catch(() => note("the figures did not change"));
      result.changed = result.changed && changed;
      note(`figures changed: ${changed}`);
      await page.waitForTimeout(1000);
      await shot(`${k}2_after`);
    }
    // hover an element (e.g. a coloured token) and read its hover card (a CSS ::after with its data-tip)
    if (nb.hover) {
      const el = panel.locator(nb.hover).first();
      await el.scrollIntoViewIfNeeded();
      await el.hover();
      result.hover = await el.evaluate((e) => getComputedStyle(e, "::after").content);
      note(`hover card: ${result.hover.slice(0, 80)}`);
      await shot("03_hover");
    }
    // click Generate (the callback runs in the kernel, the answers come back through the widget comm)
    if (nb.generate) {
      const button = panel.locator("button.jupyter-button", { hasText: "Generate" }).first();
      await button.scrollIntoViewIfNeeded();
      await button.click();
      const answers = panel.locator(".widget-html table").first();
      await answers.waitFor({ timeout: left() });
      result.answers = (await answers.innerText()).slice(0, 500);
      await answers.scrollIntoViewIfNeeded();
      note("answers shown");
      await shot("03_generated");
    }
    result.ok = result.errors.length === 0 && result.plots > 0 && result.changed;
  } catch (e) {
    result.errors.push(`driver: ${e.message.split("\n")[0]}`);
    await shot("99_failure").catch(() => null);
  } finally {
    // free the kernel (and its model), then close the notebook without saving
    await page.evaluate(async (name) => {
      for (const w of [...window.jupyterapp.shell.widgets("main")]) {
        if (!w.context || !w.context.path.endsWith(name)) continue;
        await w.sessionContext.shutdown();
        w.context.model.dirty = false;
        w.dispose();
      }
    }, nb.notebook).catch((e) => note(`closing: ${e.message.split("\n")[0]}`));
  }
  return result;
}

async function main() {
  const browser = await chromium.launch({
    executablePath: opts.chromium || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
    ],
  });
  const results = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
    page.on("pageerror", (e) => currentNote(`pageerror: ${e.message.slice(0, 200)}`));
    // a fresh workspace (`reset`): no notebook reopened from an earlier session
    await page.goto(`${opts.url}/lab?reset&token=${opts.token}`, { timeout: (opts.timeout_s || 300) * 1000 });
    await page.waitForFunction(() => window.jupyterapp && window.jupyterapp.commands.hasCommand("docmanager:open"),
      null, { timeout: (opts.timeout_s || 300) * 1000 });
    await page.evaluate(() => window.jupyterapp.restored);
    await page.evaluate(`window.figureDigests = ${figureDigests};
      window.notebookById = (i) => [...window.jupyterapp.shell.widgets("main")].find((w) => w.id === i);`);
    for (const nb of opts.notebooks) results.push(await runOne(page, nb));
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(results));
}

main();
