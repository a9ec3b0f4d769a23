// A mock of the Hugging Face hub's URL layout (/hub/{org}/{name}/resolve/main/{file}),
// serving the tiny fixture model and some broken variants of it.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const tinyDir = path.resolve(here, '..', 'fixtures', 'tiny-bert');

function models() {
  const read = (f) => fs.readFileSync(path.join(tinyDir, f));
  const good = {
    'config.json': read('config.json'),
    'vocab.txt': read('vocab.txt'),
    'tokenizer_config.json': read('tokenizer_config.json'),
    'model.safetensors': read('model.safetensors'),
  };
  const weights = good['model.safetensors'];
  // another model of the same shape: every weight one unit in the last place away
  const other = Buffer.from(weights);
  const dataStart = 8 + Number(other.readBigUInt64LE(0));
  for (let i = dataStart; i < other.length; i += 4) other[i] ^= 1;
  const mlmDir = path.resolve(tinyDir, '..', 'tiny-mlm');
  const mlm = Object.fromEntries(['config.json', 'vocab.txt', 'tokenizer_config.json', 'model.safetensors'].map((f) => [f, fs.readFileSync(path.join(mlmDir, f))]));
  return {
    // a tiny BertForMaskedLM (tests/reference/make_mlm_fixture.py): fill-mask answers as the pipeline does
    'tiny/mlm': mlm,
    'tiny/other': { ...good, 'model.safetensors': other },
    'tiny/bert': good,
    'bad/truncated': { ...good, 'model.safetensors': weights.subarray(0, weights.length - 5000) },
    'bad/html': { ...good, 'config.json': Buffer.from('<!DOCTYPE html><html><body>Sign in to continue</body></html>') },
    'slow/bert': good,
    'bad/huge': good,
  };
}

// The tests' GLUE-layout data (tests/fixtures/glue-tiny, synthetic pairs), so they
// need no copy of MRPC: served as the page's bundled data/mrpc/, and as the hub's
// datasets server returns MRPC (/datasets/rows?...&split=&offset=&length=).
export const glueDir = path.resolve(here, '..', 'fixtures', 'glue-tiny');

function mrpcSplit(split) {
  const file = path.join(glueDir, split === 'train' ? 'train.tsv' : 'dev.tsv');
  const lines = fs.readFileSync(file, 'utf8').replace(/^\uFEFF/, '').split('\n').slice(1).filter((l) => l.trim());
  return lines.map((l, i) => {
    const c = l.split('\t');
    return { row_idx: i, row: { sentence1: c[3], sentence2: c[4], label: Number(c[0]), idx: i }, truncated_cells: [] };
  });
}

/// A request handler for www/serve.mjs's `extra`.
export function mockHub() {
  const all = models();
  return async (req, res, url) => {
    const bundled = url.pathname.match(/^\/data\/mrpc\/(train|dev)\.tsv$/);
    if (bundled) {
      res.writeHead(200, { 'content-type': 'text/tab-separated-values; charset=utf-8' });
      res.end(fs.readFileSync(path.join(glueDir, `${bundled[1]}.tsv`)));
      return true;
    }
    if (url.pathname === '/datasets/rows') {
      const rows = mrpcSplit(url.searchParams.get('split'));
      const offset = Number(url.searchParams.get('offset')), length = Number(url.searchParams.get('length'));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ features: [], rows: rows.slice(offset, offset + length), num_rows_total: rows.length }));
      return true;
    }
    const m = url.pathname.match(/^\/hub\/([^/]+\/[^/]+)\/resolve\/main\/(.+)$/);
    if (!m) return false;
    // as the real hub does: pages on other origins may fetch its files
    res.setHeader('access-control-allow-origin', '*');
    if (m[1] === 'bad/huge' && m[2] === 'model.safetensors') {
      // a header that claims 3 GB: the page must not reserve that, and says the file is too large
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '3000000000' });
      res.write(Buffer.alloc(1024));
      setTimeout(() => res.destroy(), 2000);
      return true;
    }
    const bytes = all[m[1]]?.[m[2]];
    if (!bytes) { res.writeHead(404, { 'content-type': 'text/plain' }); res.end('Entry not found'); return true; }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.length });
    // trickle large files so progress shows (slow/bert slowly enough to cancel)
    const chunk = 32 * 1024;
    const pause = m[1] === 'slow/bert' ? 1000 : 15;
    for (let i = 0; i < bytes.length; i += chunk) {
      if (res.destroyed) return true;
      res.write(bytes.subarray(i, i + chunk));
      if (bytes.length > chunk) await new Promise((r) => setTimeout(r, pause));
    }
    res.end();
    return true;
  };
}
