// The Fine-tune page in headless Chromium with the tiny model from the mock hub
// and the tests' GLUE-layout data (tests/fixtures/glue-tiny): a head run on
// WebGPU whose loss falls, pause, reload, resume, try it, export; a run that
// keeps its model when another is loaded; runs saved as units; a full storage
// reported (for a run of BERT's top layers); the whole model fine-tuned on
// WebGPU and on the CPU path, paused, reloaded, resumed, exported and loaded
// in the explorer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer } from '../../www/serve.mjs';
import { mockHub, glueDir } from './mock-hub.mjs';
import { LONG, artifacts, launch, open, root, text, waitForModel, waitForText } from './helpers.mjs';

let server;
before(async () => { server = await startServer({ extra: mockHub() }); });
after(async () => { await server.close(); });

const losses = async (page) => JSON.parse((await page.getAttribute('[data-testid=loss-curve]', 'data-losses')) || '[]');
const epochRows = (page) => page.locator('[data-testid=epoch-metrics] tbody tr[data-accuracy]');
const status = (page, re) => waitForText(page, 'train-status', re);

async function setParam(page, id, value) {
  await page.fill(`[data-testid=${id}]`, String(value));
  await page.dispatchEvent(`[data-testid=${id}]`, 'change');
}

function url(query) {
  const hub = encodeURIComponent(server.base + '/hub');
  return `${server.base}/?tab=finetune&hub=${hub}&datasets=${encodeURIComponent(server.base + '/datasets')}&${query}`;
}

async function loadModel(page, id) {
  await page.fill('[data-testid=model-source]', id);
  await page.click('[data-testid=load-model]');
  await waitForModel(page, id);
}

/// Every epoch row's accuracy equals what its confusion matrix says, for `n` pairs.
async function checkEpochRows(page, n) {
  const rows = await epochRows(page).evaluateAll((r) => r.map((x) => [Number(x.dataset.accuracy), JSON.parse(x.dataset.confusion)]));
  for (const [acc, [[tn, fp], [fn, tp]]] of rows) {
    assert.equal(tn + fp + fn + tp, n);
    assert.equal(acc, (tn + tp) / n);
  }
  return rows;
}

test('fine-tune on WebGPU: loss falls, metrics, pause, reload, resume, try it, export', { timeout: 900_000 }, async (t) => {
  const browser = await launch(t, { webgpu: true });
  const { page, errors } = await open(browser, url('backend=gpu&model=tiny/bert'));
  await waitForModel(page, 'tiny/bert');
  assert.match(await text(page, 'backend'), /GPU: .*WebGPU/);
  await page.waitForSelector('[data-testid=data-summary]', { timeout: LONG });
  assert.match(await text(page, 'train-stats'), /240 examples; not_equivalent 80 \(33\.3%\), equivalent 160 \(66\.7%\)/);
  assert.match(await text(page, 'dev-stats'), /60 examples; not_equivalent 19 \(31\.7%\), equivalent 41 \(68\.3%\) · majority-class baseline 68\.3% accuracy/);
  // the same split from the (mock) hub's datasets server, 100 rows a request
  await page.click('[data-testid=fetch-hub]');
  await waitForText(page, 'data-summary', /Hugging Face hub/);
  assert.match(await text(page, 'train-stats'), /240 examples; not_equivalent 80/);
  assert.equal(server.log.filter((p) => p === '/datasets/rows').length, 3 + 1);

  // the baseline row: always "paraphrase" scores 41/60 and F1 2·(41/60)/(1 + 41/60)
  assert.match(await text(page, 'baseline-row'), /majority baseline0\.\d{4}0\.68330\.8119/);
  // a head on frozen features (on a GPU the page suggests the whole model)
  assert.equal(await page.inputValue('[data-testid=train-layers]'), 'all');
  await page.selectOption('[data-testid=train-layers]', '0');
  await setParam(page, 'train-limit', 64);
  await setParam(page, 'lr', '0.01');
  await setParam(page, 'epochs', 60);
  // pair features and a small MLP: enough capacity to fit 64 pairs of the tiny random model
  await page.selectOption('[data-testid=head-input]', 'pair');
  await setParam(page, 'mlp', 64);
  // before Start: what it will encode (each sentence of a pair alone for pair features), and how long
  await waitForText(page, 'estimate', /Start first encodes 124 pairs once \(248 forward passes ≈ \d+ s on GPU.*\), then trains the head for 240 steps/);
  // a double click starts one run, not two into one curve
  await page.dblclick('[data-testid=start]');
  await status(page, /Encoding (train|validation) pairs|Training on/);
  await epochRows(page).first().waitFor({ timeout: LONG });
  await page.click('[data-testid=pause]');
  await status(page, /^Paused\.$/);
  const pausedAt = (await losses(page)).length;
  assert.ok(pausedAt >= 4 && pausedAt < 240, `paused after ${pausedAt} steps`);
  await waitForText(page, 'save-state', new RegExp(`Saved in this browser at step ${pausedAt} of 240`));
  await page.screenshot({ path: path.join(artifacts, 'finetune-paused.png'), fullPage: true });

  // reload: the saved run is listed, and resumes where it stopped
  await page.reload();
  await waitForModel(page, 'tiny/bert');
  const run = page.locator('[data-testid=saved-run]');
  await run.first().waitFor({ timeout: LONG });
  assert.equal(await run.count(), 1, 'one run, though Start was clicked twice');
  assert.match(await run.first().textContent(), new RegExp(`tiny/bert · MLP head on pair · lr 0.01 · GLUE MRPC \\(paraphrase pairs\\) \\(Hugging Face hub\\) · step ${pausedAt} of 240 .*resumable`));
  await run.first().locator('[data-testid=resume-run]').click();
  await status(page, /^Done\.$/);
  const all = await losses(page);
  assert.equal(all.length, 60 * 4, 'every step of 60 epochs × 4 batches, before and after the reload');
  const first = all.slice(0, 8).reduce((a, b) => a + b) / 8;
  const last = all.slice(-8).reduce((a, b) => a + b) / 8;
  assert.ok(last < 0.9 * first, `the loss fell: ${first} → ${last}`);
  assert.equal(await epochRows(page).count(), 60);
  await checkEpochRows(page, 60);
  // the chart: ticks on both axes, epoch markers, one validation point per epoch, values on hover
  assert.ok(await page.locator('[data-testid=loss-curve] .tick').count() >= 8);
  assert.equal(await page.locator('[data-testid=loss-curve] line.epoch').count(), 60);
  assert.equal(await page.locator('[data-testid=loss-curve] circle.eval-loss').count(), 60);
  assert.equal(await page.locator('[data-testid=loss-curve] polygon.eval-f1').count(), 60);
  const box = await page.locator('[data-testid=loss-curve]').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await waitForText(page, 'loss-hover', /^step \d+ \(epoch \d+\.\d\d\): loss \d\.\d{4}, smoothed \d\.\d{4}$/);
  assert.equal(await page.locator('[data-testid=epoch-metrics] tr.best').count(), 1);
  await page.screenshot({ path: path.join(artifacts, 'finetune-done.png'), fullPage: true });

  // try it
  await page.click('[data-testid=try]');
  await waitForText(page, 'try-answer', /^(equivalent|not_equivalent) · P\(not_equivalent\) = \d\.\d{3}, P\(equivalent\) = \d\.\d{3}$/);

  // export: the MLP head with its metadata, and the model it was trained on
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=export]')]);
  const file = path.join(artifacts, 'head.safetensors');
  await download.saveAs(file);
  const bytes = fs.readFileSync(file);
  const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString());
  assert.deepEqual(header['head.dense.weight'].shape, [64, 4 * 32]);
  assert.deepEqual(header['head.out.weight'].shape, [2, 64]);
  assert.equal(header.__metadata__.head_input, 'pair');
  assert.equal(header.__metadata__.num_labels, '2');
  assert.equal(header.__metadata__.model_name, 'tiny/bert');
  assert.deepEqual(errors, []);
});

test('a run keeps its model; heads and saved runs refuse another; runs resume on their own data', { timeout: 900_000 }, async (t) => {
  const browser = await launch(t, { webgpu: false });
  const { page, errors } = await open(browser, url('backend=cpu&model=tiny/bert'));
  await waitForModel(page, 'tiny/bert');
  await page.waitForSelector('[data-testid=data-summary]', { timeout: LONG });
  await page.selectOption('[data-testid=train-layers]', '0');
  // every pair, 1000 epochs (the most the page takes) of one-pair steps through the widest MLP head
  // (milliseconds a step): 240 000 steps, so the run is still training when the model changes and when
  // Stop comes after the reload, on a fast machine or a loaded one
  await setParam(page, 'train-limit', 240);
  await setParam(page, 'mlp', 4096);
  await setParam(page, 'lr', '0.01');
  await setParam(page, 'epochs', 1000);
  await setParam(page, 'train-bs', 1);
  await page.selectOption('[data-testid=head-input]', 'pair');
  await page.click('[data-testid=start]');
  await page.waitForFunction(() => JSON.parse(document.querySelector('[data-testid=loss-curve]').dataset.losses || '[]').length >= 6, null, { timeout: LONG });
  // run A: another model is loaded mid-run → A pauses, saved, and says how to go on
  await loadModel(page, 'tiny/other');
  await status(page, /^Paused: another model was loaded\. The run is saved; load tiny\/bert again/);
  const lossesA = await losses(page);
  const stepsA = lossesA.length;
  assert.ok(stepsA >= 6 && stepsA < 240000, `A paused at step ${stepsA}`);
  // "Try it" with A's head on the other model: refused, both models named
  await page.click('[data-testid=try]');
  await waitForText(page, 'try-answer', /this head was made with tiny\/bert .*the loaded model is tiny\/other/);
  // a head trained on tiny-bert (tests/fixtures/tiny-head) is refused on tiny/other, taken on tiny/bert
  const head = path.join(root, 'tests/fixtures/tiny-head/head.safetensors');
  await page.setInputFiles('[data-testid=import-head]', head);
  await waitForText(page, 'import-result', /this head was made with tiny-bert .*the loaded model is tiny\/other/);
  // resuming A on the other model is refused too
  await page.locator('[data-testid=saved-run]').first().locator('[data-testid=resume-run]').click();
  await waitForText(page, 'train-status', /this run was made with tiny\/bert .*the loaded model is tiny\/other/);
  await loadModel(page, 'tiny/bert');
  await page.setInputFiles('[data-testid=import-head]', []);
  await page.setInputFiles('[data-testid=import-head]', head);
  await waitForText(page, 'import-result', /^Imported: Linear head on pooler features, trained on tiny-bert/);
  await page.click('[data-testid=try]');
  await waitForText(page, 'try-answer', /^(equivalent|not_equivalent) · P\(not_equivalent\) = /);

  // run B with other settings while A is paused: A stays saved as its own run
  await setParam(page, 'train-limit', 64);
  await setParam(page, 'mlp', 0);
  await setParam(page, 'epochs', 2);
  await setParam(page, 'train-bs', 16);
  await page.selectOption('[data-testid=head-input]', 'cls');
  await page.click('[data-testid=start]');
  await status(page, /^Done\.$/);
  assert.equal((await losses(page)).length, 2 * 4);
  // reload, resume A: it goes on from its own step, with its own history and settings
  await page.reload();
  await waitForModel(page, 'tiny/bert');
  const runs = page.locator('[data-testid=saved-run]');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=saved-run]').length === 2, null, { timeout: LONG });
  assert.match(await runs.nth(0).textContent(), /Linear head on cls .* step 8 of 8 .*done/);
  assert.match(await runs.nth(1).textContent(), new RegExp(`MLP head on pair .* step ${stepsA} of 240000 .*resumable`));
  await runs.nth(1).locator('[data-testid=resume-run]').click();
  await page.waitForFunction((n) => JSON.parse(document.querySelector('[data-testid=loss-curve]').dataset.losses || '[]').length >= n, stepsA + 8, { timeout: LONG });
  assert.deepEqual((await losses(page)).slice(0, stepsA), lossesA, 'A continues its own history');
  assert.equal(await page.inputValue('[data-testid=epochs]'), '1000');
  // Stop ends it; it is listed as stopped
  await page.click('[data-testid=stop]');
  await status(page, /^Stopped\.$/);
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=saved-run]')].some((r) => /step \d+ of 240000 .*stopped/.test(r.textContent)), null, { timeout: LONG });
  // invalid settings say why inline and hold Start until fixed (a diverging rate is
  // stopped by the engine too: tests/training.rs, tests/finetune_cli.rs)
  for (const [id, value, why] of [['lr', '1000', /learning_rate: a number in \(0, 1\]/], ['lr', 'abc', /learning_rate: a number/],
    ['epochs', '-1', /num_train_epochs: a whole number/], ['train-bs', '0', /per_device_train_batch_size: between 1 and 4096/]]) {
    await setParam(page, id, value);
    await waitForText(page, `${id}-error`, why);
    assert.equal(await page.getAttribute(`[data-testid=${id}]`, 'aria-invalid'), 'true');
    assert.ok(await page.isDisabled('[data-testid=start]'), `Start is disabled with ${id} = ${value}`);
    await setParam(page, id, id === 'lr' ? '0.01' : '2');
    assert.equal(await page.getAttribute(`[data-testid=${id}]`, 'aria-invalid'), 'false');
  }
  assert.ok(!(await page.isDisabled('[data-testid=start]')), 'Start is enabled again');

  // TSVs picked from disk: counts, and malformed rows listed by line
  const dir = fs.mkdtempSync(path.join(artifacts, 'tsv-'));
  const train = fs.readFileSync(path.join(glueDir, 'train.tsv'), 'utf8').split('\n').slice(0, 31).join('\n') + '\n1\t5\t6\tonly four columns\n';
  fs.writeFileSync(path.join(dir, 'train.tsv'), train);
  fs.writeFileSync(path.join(dir, 'dev.tsv'), fs.readFileSync(path.join(glueDir, 'dev.tsv')));
  await page.setInputFiles('[data-testid=train-file]', path.join(dir, 'train.tsv'));
  await page.setInputFiles('[data-testid=dev-file]', path.join(dir, 'dev.tsv'));
  await waitForText(page, 'data-summary', /train\.tsv \+ dev\.tsv/);
  assert.match(await text(page, 'train-stats'), /^train: 30 examples/);
  assert.match(await text(page, 'skipped'), /1 notes on the data.*training file: skipped line 32: 4 columns instead of 5/s);
  await page.screenshot({ path: path.join(artifacts, 'finetune-runs.png'), fullPage: true });
  assert.deepEqual(errors, []);
});

test('a full browser storage is reported, never shown as saved', { timeout: 600_000 }, async (t) => {
  const browser = await launch(t, { webgpu: false });
  const { page, errors, context } = await open(browser, url('backend=cpu&model=tiny/bert'));
  await waitForModel(page, 'tiny/bert');
  await page.waitForSelector('[data-testid=data-summary]', { timeout: LONG });
  // the origin's quota, as a nearly full disk leaves it: what is stored now and a few kB more
  const used = await page.evaluate(async () => (await navigator.storage.estimate()).usage);
  const cdp = await context.newCDPSession(page);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin: server.base, quotaSize: used + 4096 });
  // the page's suggestion, BERT's top two layers, is every layer of the 2-layer tiny model: the whole model
  await page.waitForFunction(() => document.querySelector('[data-testid=train-layers]')?.value === 'all', null, { timeout: LONG });
  await setParam(page, 'train-limit', 32);
  await setParam(page, 'epochs', 1);
  // a rate that leaves the model where it started: the page says it learned nothing
  await setParam(page, 'lr', '1e-7');
  await page.click('[data-testid=start]');
  await status(page, /^Done\.$/);
  await waitForText(page, 'verdict', /predicts "(equivalent|not_equivalent)" for every validation example|No epoch beats the majority baseline \(68\.3% accuracy\)/);
  assert.match(await text(page, 'save-state'), /^Not saved: the browser's storage is full/);
  await page.waitForFunction(() => /browser storage: .* used of /.test(document.querySelector('[data-testid=storage]')?.textContent), null, { timeout: LONG });
  assert.equal(await page.locator('[data-testid=saved-run]').count(), 0);
  assert.deepEqual(errors, []);
});

for (const gpu of [false, true]) {
  const where = gpu ? 'WebGPU' : 'the CPU path';
  test(`fine-tune BERT itself on ${where}: loss falls, pause, reload, resume, export, the folder loads in the explorer`, { timeout: 900_000 }, async (t) => {
    await wholeModelRun(t, gpu);
  });
}

async function wholeModelRun(t, gpu) {
  const browser = await launch(t, { webgpu: gpu });
  const { page, errors } = await open(browser, url(`backend=${gpu ? 'gpu' : 'cpu'}&model=tiny/bert`));
  await waitForModel(page, 'tiny/bert');
  await page.waitForSelector('[data-testid=data-summary]', { timeout: LONG });
  // the page's suggestion: the whole model (on a GPU; on the CPU path the top two layers, which is all of the tiny model)
  await page.waitForFunction(() => document.querySelector('[data-testid=train-layers]')?.value === 'all', null, { timeout: LONG });
  assert.equal(await page.inputValue('[data-testid=lr]'), '0.00002', "the Trainer's learning rate for the whole model");
  assert.ok(await page.isDisabled('[data-testid=head-input]'), "BertForSequenceClassification's own head");
  // SwiftShader (headless Chromium's WebGPU) emulates a GPU on the CPU at ~0.1 s a dispatch,
  // and a step is ~90 dispatches: the WebGPU run is shorter
  const [pairs, epochs, lr] = gpu ? [32, 6, '0.01'] : [64, 40, '0.001'];
  const steps = (pairs / 16) * epochs;
  await setParam(page, 'train-limit', pairs);
  await setParam(page, 'lr', lr);
  await setParam(page, 'epochs', epochs);
  // before Start: the steps, time and memory of each choice
  const on = gpu ? "this tab's GPU" : "this tab's CPU path";
  await waitForText(page, 'estimate', new RegExp(`^Start trains the whole model for ${steps} steps ≈ \\d+ (s|min) on ${on}, evaluating 60 validation pairs each epoch; the run holds about \\d+ MB`));
  assert.match(await page.textContent('[data-testid=train-layers] option[value=all]'), /the whole model · ≈ \d+ (s|min)/);
  // a batch too large for a tab: the estimate says so, and what to do
  await setParam(page, 'train-bs', 4096);
  await waitForText(page, 'estimate', /more than a tab holds: lower per_device_train_batch_size and raise gradient_accumulation_steps/);
  await setParam(page, 'train-bs', 16);
  await page.click('[data-testid=start]');
  await status(page, gpu ? /Training on GPU: the whole model/ : /Training on CPU: the whole model/);
  await epochRows(page).first().waitFor({ timeout: LONG });
  await page.click('[data-testid=pause]');
  await status(page, /^Paused\.$/);
  const pausedAt = (await losses(page)).length;
  assert.ok(pausedAt >= pairs / 16 && pausedAt < steps, `paused after ${pausedAt} steps`);
  await waitForText(page, 'save-state', new RegExp(`Saved in this browser at step ${pausedAt} of ${steps}`));

  // reload: the run resumes from its checkpoint (weights, AdamW's moments, position)
  await page.reload();
  await waitForModel(page, 'tiny/bert');
  const run = page.locator('[data-testid=saved-run]');
  await run.first().waitFor({ timeout: LONG });
  assert.match(await run.first().textContent(), new RegExp(`tiny/bert · the whole model · lr ${lr} · .* step ${pausedAt} of ${steps} .*resumable`));
  await run.first().locator('[data-testid=resume-run]').click();
  await status(page, /^Done\.$/);
  const all = await losses(page);
  assert.equal(all.length, steps, 'every step, before and after the reload');
  const mean = (xs) => xs.reduce((a, b) => a + b) / xs.length;
  const q = steps / 4;
  assert.ok(mean(all.slice(-q)) < 0.9 * mean(all.slice(0, q)), `the loss fell: ${mean(all.slice(0, q))} → ${mean(all.slice(-q))}`);
  assert.equal(await epochRows(page).count(), epochs);
  await checkEpochRows(page, 60);
  await page.click('[data-testid=try]');
  await waitForText(page, 'try-answer', /^(equivalent|not_equivalent) · P\(not_equivalent\) = \d\.\d{3}, P\(equivalent\) = \d\.\d{3}$/);

  // export: a Hugging Face folder, one download per file
  const dir = fs.mkdtempSync(path.join(artifacts, 'tuned-'));
  const names = ['config.json', 'model.safetensors', 'vocab.txt', 'tokenizer_config.json'];
  const downloads = [];
  page.on('download', (d) => downloads.push(d));
  assert.match(await text(page, 'export'), /Export model \(Hugging Face folder/);
  await page.click('[data-testid=export]');
  for (let i = 0; i < 100 && downloads.length < names.length; i++) await page.waitForTimeout(100);
  assert.deepEqual(downloads.map((d) => d.suggestedFilename()).sort(), [...names].sort());
  for (const d of downloads) await d.saveAs(path.join(dir, d.suggestedFilename()));
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  assert.deepEqual(config.architectures, ['BertForSequenceClassification']);
  assert.deepEqual(config.id2label, { 0: 'not_equivalent', 1: 'equivalent' });
  const bytes = fs.readFileSync(path.join(dir, 'model.safetensors'));
  const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString());
  assert.deepEqual(header['bert.encoder.layer.0.attention.self.query.weight'].shape, [32, 32]);
  assert.deepEqual(header['classifier.weight'].shape, [2, 32]);

  // the folder in the explorer: the fine-tuned encoder, not the one it started from
  await page.click('[data-testid=tab-explore]');
  const hidden = async () => JSON.parse(await page.inputValue('[data-testid=values-json]')).last_hidden_state;
  await page.waitForFunction(() => document.querySelector('[data-testid=values-json]')?.value, null, { timeout: LONG });
  const before = await hidden();
  await page.setInputFiles('[data-testid=model-files]', names.map((f) => path.join(dir, f)));
  await waitForModel(page, 'dropped files');
  await page.waitForFunction((b) => {
    const v = document.querySelector('[data-testid=values-json]')?.value;
    return v && JSON.stringify(JSON.parse(v).last_hidden_state) !== b;
  }, JSON.stringify(before), { timeout: LONG });
  assert.deepEqual(errors, []);
}
