// Screenshot saved plotly HTML figures (e.g. a notebook's OUT_DIR) with headless Debian chromium:
//   node tests/notebooks/browser/screenshot_html.js OUT_PNG_DIR file1.html [file2.html ...]
// One PNG per file, named after it; prints the PNG paths. Used to look at what headless runs produced.
"use strict";
const path = require("path");
const { chromium } = require(path.join(__dirname, "node_modules", "playwright-core"));

async function main() {
  const [outDir, ...files] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 480 } });
    for (const f of files) {
      await page.goto("file://" + path.resolve(f));
      await page.waitForSelector(".js-plotly-plot .main-svg", { timeout: 30000 });
      const png = path.join(outDir, path.basename(f, ".html") + ".png");
      await page.screenshot({ path: png, fullPage: true });
      console.log(png);
    }
  } finally {
    await browser.close();
  }
}

main().catch((e) => { console.error(e.message); process.exit(1); });
