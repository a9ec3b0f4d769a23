// www/serve.mjs against requests a hostile user sends (issue 24): no path
// outside dist/ is served, however it is encoded; a bad escape is a 400 and
// the server keeps serving. No browser needed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startServer } from '../../www/serve.mjs';

let server;
let top;
before(async () => {
  // dist/ with a sibling whose name starts like it: `startsWith(dist)` let /..%2fdist-x/ reach it
  top = fs.mkdtempSync(path.join(os.tmpdir(), 'bertlab-serve-'));
  fs.mkdirSync(path.join(top, 'dist'));
  fs.mkdirSync(path.join(top, 'dist-x'));
  fs.writeFileSync(path.join(top, 'dist', 'index.html'), '<p>page</p>');
  fs.writeFileSync(path.join(top, 'dist-x', 'secret.txt'), 'secret');
  fs.writeFileSync(path.join(top, 'secret.txt'), 'secret');
  server = await startServer({ dist: path.join(top, 'dist') });
});
after(async () => { await server.close(); fs.rmSync(top, { recursive: true, force: true }); });

/// The status and body of GET `target`, sent as is (no client-side normalising).
function get(target) {
  const { port } = new URL(server.base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: target, method: 'GET' }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('traversal attempts never reach a file outside dist/', async () => {
  for (const target of [
    '/..%2fdist-x/secret.txt',
    '/..%2Fdist-x%2Fsecret.txt',
    '/%2e%2e/dist-x/secret.txt',
    '/%2e%2e%2fsecret.txt',
    '/%252e%252e/dist-x/secret.txt',
    '/%252e%252e%252fsecret.txt',
    '/..\\dist-x\\secret.txt',
    '/..%5cdist-x%5csecret.txt',
    '/../dist-x/secret.txt',
    '/./../secret.txt',
  ]) {
    const r = await get(target);
    assert.ok([403, 404].includes(r.status), `${target}: ${r.status} ${r.body}`);
    assert.ok(!r.body.includes('secret'), `${target} leaked the file`);
  }
});

test('a bad escape or a NUL is a 400, and the server keeps serving', async () => {
  for (const target of ['/%', '/%zz', '/index.html%', '/%E0%A4%A', '/a%00b']) {
    assert.equal((await get(target)).status, 400, target);
  }
  const page = await get('/');
  assert.equal(page.status, 200);
  assert.match(page.body, /page/);
  assert.equal((await get('/index.html')).status, 200);
  assert.equal((await get('/nothing-here')).status, 404);
});
