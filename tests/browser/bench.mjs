// The in-browser benchmark, headless: `node tests/browser/bench.mjs [cpu|gpu|all] [--once]`
// (after `bash .ci/build-web`). Opens the page's `?bench` mode in Chromium (WebGPU
// on, SwiftShader without a GPU), twice: the second time the model comes from the
// browser's cache (`--once`: the first visit only, for slow adapters). Prints the
// page's table and JSON, with the date and the machine.
import os from 'node:os';
import { startServer } from '../../www/serve.mjs';
import { launch } from './helpers.mjs';

const which = process.argv[2] ?? 'all';
const visits = process.argv.includes('--once') ? ['first visit'] : ['first visit', 'reload (model from the cache)'];
const server = await startServer();
const t = { after: () => {} };
const browser = await launch(t, { webgpu: true });
const context = await browser.newContext();
const page = await context.newPage();
console.log(`node tests/browser/bench.mjs ${process.argv.slice(2).join(' ')} · ${os.cpus()[0].model}, ${os.cpus().length} cores · ${new Date().toISOString().slice(0, 10)} · ${browser.version()}`);
for (const visit of visits) {
  await page.goto(`${server.base}/?bench=${which}`);
  await page.waitForSelector('[data-testid=bench-table]', { timeout: 3_600_000 });
  console.log(`\n## ${visit}\n`);
  console.log(await page.textContent('[data-testid=bench-table]'));
  console.log(await page.textContent('[data-testid=bench-json]'));
}
await browser.close();
await server.close();
