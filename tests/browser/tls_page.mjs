// tls_page.mjs -- the demo page over https (wss_port) in headless Chromium: the page and
// roomd.js come over TLS, the page's WebSocket is wss:// (mixed content would refuse ws://),
// it chats with a TCP line client on the plain port, and its connection is secure.
//
// Chromium trusts the test CA's server certificate by its public key
// (--ignore-certificate-errors-spki-list, SPKI = base64 SHA-256 of the key), so nothing is
// installed system-wide. Run by test_tls_page.py, which makes the certificate and starts the
// daemon: ROOMD_WSS_PORT, ROOMD_TCP_PORT, ROOMD_ADMIN_PORT, ROOMD_ADMIN_KEY, ROOMD_SPKI.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const WSS_PORT = Number(process.env.ROOMD_WSS_PORT);
const TCP_PORT = Number(process.env.ROOMD_TCP_PORT);
const ADMIN_PORT = Number(process.env.ROOMD_ADMIN_PORT);
const ADMIN_KEY = process.env.ROOMD_ADMIN_KEY;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 10000;
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  `--ignore-certificate-errors-spki-list=${process.env.ROOMD_SPKI}`];

/* Lines of a TCP client, waited for with a deadline. */
function tcpClient() {
  const lines = [];
  const waiters = [];
  let buf = '';
  const sock = net.connect(TCP_PORT, '127.0.0.1');
  sock.setEncoding('utf8');
  sock.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\r\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 2);
    }
    waiters.splice(0).forEach((w) => w());
  });
  return {
    sock,
    async expect(pred, what) {
      const deadline = Date.now() + TIMEOUT;
      for (;;) {
        const i = lines.findIndex(pred);
        if (i >= 0) return lines.splice(i, 1)[0];
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`TCP client: no ${what} within ${TIMEOUT} ms`);
        await new Promise((r) => { setTimeout(r, left); waiters.push(r); });
      }
    },
  };
}

const profile = mkdtempSync(join(tmpdir(), 'roomd-chromium-tls-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM, headless: true, args: ARGS,
});
const errors = [];
try {
  const tcp = tcpClient();
  await tcp.expect((m) => m.welcome, 'the welcome');
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(TIMEOUT);
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  const res = await page.goto(`https://localhost:${WSS_PORT}/`);
  assert.equal(res.status(), 200);
  assert.ok((await res.securityDetails()) !== null, 'the page came over TLS');
  await page.locator('#status', { hasText: 'online' }).waitFor();
  await page.locator('#welcome', { hasText: 'Hello! Welcome to the roomd api' }).waitFor();
  assert.ok(sockets.length > 0 && sockets.every((u) => u.startsWith('wss://')), `sockets ${sockets}`);
  await page.locator('#me', { hasText: 'you are ' }).waitFor();
  const pageId = await page.locator('#me').getAttribute('title');

  await page.fill('#message', 'hello over wss');
  await page.press('#message', 'Enter');
  const heard = await tcp.expect((m) => m.message === 'hello over wss', "the page's say");
  assert.equal(heard.from, pageId);
  tcp.sock.write('say hello page, from the plain port\n');
  await page.locator('#log li', { hasText: 'hello page, from the plain port' }).waitFor();

  const details = await fetch(`http://127.0.0.1:${ADMIN_PORT}/api/connections/${pageId}`, {
    headers: { Authorization: `Bearer ${ADMIN_KEY}` }, signal: AbortSignal.timeout(TIMEOUT),
  }).then((r) => r.json());
  const attrs = details.data ? details.data.attributes : details.attributes;
  assert.equal(attrs.secure, true, JSON.stringify(details));
  assert.equal(attrs.type, 'websocket');
  assert.deepEqual(errors, []);
  tcp.sock.destroy();
  console.log('tls_page: ok');
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
