// Fine-tuning speed in the tab: `node tests/browser/bench-finetune.mjs [--steps 10] [--gpu] [choices...]`
// (after `bash .ci/build-web`; choices as the page's "what trains" values, default `2 all`).
// Opens the Fine-tune tab with the default model on the CPU path (on WebGPU with
// `--gpu`: SwiftShader in headless Chromium, unless the browser has a GPU) and the bundled MRPC,
// trains each choice for `--steps` steps of 16 pairs and prints the steps/s the page
// reports (the first step, which encodes the frozen layers' states, included), with
// the date and the machine.
import os from 'node:os';
import { startServer } from '../../www/serve.mjs';
import { launch, waitForText } from './helpers.mjs';

const args = process.argv.slice(2);
const at = args.indexOf('--steps');
const steps = at >= 0 ? Number(args[at + 1]) : 10;
const gpu = args.includes('--gpu');
const choices = args.filter((a, i) => i !== at && i !== at + 1 && a !== '--gpu');
const server = await startServer();
const browser = await launch({ after: () => {} }, { webgpu: gpu });
const page = await (await browser.newContext()).newPage();
console.log(`node tests/browser/bench-finetune.mjs ${args.join(' ')} · ${os.cpus()[0].model}, ${os.cpus().length} cores · ${new Date().toISOString().slice(0, 10)} · ${browser.version()}`);
await page.goto(`${server.base}/?tab=finetune&backend=${gpu ? 'gpu' : 'cpu'}`);
await page.waitForFunction(() => /layers/.test(document.querySelector('[data-testid=model-info]')?.textContent ?? ''), null, { timeout: 600_000 });
await page.waitForSelector('[data-testid=data-summary]', { timeout: 600_000 });
console.log(`backend: ${await page.textContent('[data-testid=backend]')}`);
console.log(`\n| what trains | steps | steps/s | pairs/s |\n|---|---|---|---|`);
for (const choice of choices.length ? choices : ['2', 'all']) {
  await page.selectOption('[data-testid=train-layers]', choice);
  await page.fill('[data-testid=train-limit]', String(16 * steps));
  await page.dispatchEvent('[data-testid=train-limit]', 'input');
  await page.fill('[data-testid=epochs]', '1');
  await page.dispatchEvent('[data-testid=epochs]', 'input');
  await page.click('[data-testid=start]');
  // the previous choice's curve is cleared before this run reports
  await waitForText(page, 'train-status', /Training on/);
  await page.waitForFunction((n) => JSON.parse(document.querySelector('[data-testid=loss-curve]')?.dataset.losses || '[]').length >= n,
    steps, { timeout: 3_600_000, polling: 200 });
  const status = await page.textContent('[data-testid=train-status]');
  const rate = Number(/([\d.]+) steps\/s/.exec(status)?.[1]);
  const name = await page.textContent(`[data-testid=train-layers] option[value="${choice}"]`);
  console.log(`| ${name.split(' · ')[0]} | ${steps} | ${rate.toFixed(3)} | ${(16 * rate).toFixed(1)} |`);
  await page.click('[data-testid=stop]');
  await waitForText(page, 'train-status', /^(Stopped|Done)/);
}
await browser.close();
await server.close();
