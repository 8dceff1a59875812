// demo_page.mjs -- roomd's demo page in a real browser: headless Chromium (Debian's
// /usr/bin/chromium) driven by playwright-core. The page joins a room, says something a TCP
// client hears, and shows what the TCP client says; its member list follows other clients'
// joins and leaves by itself; dropped, it comes back showing every message it missed, once
// and in order; after a restart of roomd (history gone) it shows that messages were lost;
// screenshots are saved.
//
// Run by test_demo_page.py, which starts the daemon and passes ROOMD_WS_PORT,
// ROOMD_TCP_PORT, ROOMD_ADMIN_PORT, ROOMD_ADMIN_KEY and SCREENSHOT (where the PNG goes) in
// the environment. The restart part runs on a roomd of its own (ROOMD, the binary).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

import { Daemon } from '../integration/roomd_daemon.mjs';

const WS_PORT = Number(process.env.ROOMD_WS_PORT);
const TCP_PORT = Number(process.env.ROOMD_TCP_PORT);
const ADMIN_PORT = Number(process.env.ROOMD_ADMIN_PORT);
const ADMIN_KEY = process.env.ROOMD_ADMIN_KEY;
const SCREENSHOT = process.env.SCREENSHOT;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 10000;
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/* A TCP line client that waits for matching JSON lines, each with a deadline. */
class Tcp {
  constructor() {
    this.lines = [];
    this.waiters = [];
    this.buf = '';
    this.count = 0;
  }

  connect(port = TCP_PORT) {
    return new Promise((resolve, reject) => {
      this.sock = net.connect(port, '127.0.0.1', resolve);
      this.sock.once('error', reject);
      this.sock.setEncoding('utf8');
      this.sock.on('data', (d) => {
        this.buf += d;
        let i;
        while ((i = this.buf.indexOf('\r\n')) >= 0) {
          this.lines.push(JSON.parse(this.buf.slice(0, i)));
          this.buf = this.buf.slice(i + 2);
        }
        this.waiters.splice(0).forEach((w) => w());
      });
    });
  }

  async expect(pred, what) {
    const deadline = Date.now() + TIMEOUT;
    for (;;) {
      const i = this.lines.findIndex(pred);
      if (i >= 0) return this.lines.splice(i, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`TCP client: no ${what} within ${TIMEOUT} ms`);
      await new Promise((r) => {
        setTimeout(r, left);
        this.waiters.push(r);
      });
    }
  }

  async request(line) {
    this.sock.write(line + '\n');
    const n = ++this.count;
    const reply = await this.expect((m) => m.context === 'response' && m.messageCount === n, `reply to ${line}`);
    assert.equal(reply.status, 'OK', `${line}: ${JSON.stringify(reply)}`);
    return reply;
  }
}

async function admin(method, path) {
  const res = await fetch(`http://127.0.0.1:${ADMIN_PORT}${path}`, {
    method, headers: { Authorization: `Bearer ${ADMIN_KEY}` }, signal: AbortSignal.timeout(TIMEOUT),
  });
  assert.equal(res.status, 200, `${method} ${path}: ${await res.text()}`);
}

/* The texts of PAGE's log lines that match RE, top to bottom. */
function logTexts(page, re) {
  return page.locator('#log li .text').evaluateAll(
    (els, src) => els.map((e) => e.textContent).filter((t) => new RegExp(src).test(t)), re.source);
}

const range = (n, f) => Array.from({ length: n }, (_, i) => f(i + 1));

const profile = mkdtempSync(join(tmpdir(), 'roomd-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  args: ARGS,
  viewport: { width: 1100, height: 700 },
});
const errors = [];
try {
  const tcp = new Tcp();
  await tcp.connect();
  const tcpId = (await tcp.request('detailsView')).data.id;
  await tcp.request('roomChange lobby');

  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(TIMEOUT);
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  // Every roomView the page sends: the member list must follow announcements without one.
  let roomViews = 0;
  page.on('websocket', (ws) =>
    ws.on('framesent', (f) => {
      if (String(f.payload).includes('"roomView"')) roomViews++;
    }));
  await page.goto(`http://127.0.0.1:${WS_PORT}/`);

  // Connected and welcomed, in the default room.
  await page.locator('#status', { hasText: 'online' }).waitFor();
  await page.locator('#welcome', { hasText: 'Hello! Welcome to the roomd api' }).waitFor();
  await page.locator('#current-room', { hasText: 'defaultRoom' }).waitFor();
  await page.locator('#me', { hasText: 'you are ' }).waitFor();
  const pageId = await page.locator('#me').getAttribute('title');
  assert.match(pageId, /^[0-9a-f-]{36}$/);

  // Join the TCP client's room: the TCP client hears the entry, the page lists both members.
  await page.fill('#room-input', 'lobby');
  await page.click('#join');
  await page.locator('#current-room', { hasText: 'lobby' }).waitFor();
  await tcp.expect((m) => m.message === 'I have entered the room' && m.from === pageId, "the page's entry");
  await page.locator('#members-count', { hasText: '(2)' }).waitFor();
  await page.locator('#members li.self').waitFor();

  // The page says something; the TCP client hears it, from the page's connection.
  await page.fill('#message', 'hello from chromium ✓');
  await page.press('#message', 'Enter');
  const heard = await tcp.expect((m) => m.message === 'hello from chromium ✓', "the page's say");
  assert.equal(heard.room, 'lobby');
  assert.equal(heard.from, pageId);
  await page.locator('#log li.mine', { hasText: 'hello from chromium ✓' }).waitFor();

  // The TCP client says something; the page shows it with its sender.
  await tcp.request('say hello browser, from a TCP client');
  const line = page.locator('#log li', { hasText: 'hello browser, from a TCP client' });
  await line.waitFor();
  assert.equal(await line.locator('.from').textContent(), tcpId.slice(0, 8));

  // Listening to another room.
  await page.fill('#listen-input', 'other');
  await page.click('#listen');
  await page.locator('#listening li', { hasText: 'other' }).waitFor();

  // A second TCP client joins: shown as an announcement, and the member list grows -- from
  // the announcement itself, without Refresh and without another roomView (issue 11 item 15).
  const viewsBefore = roomViews;
  const tcp2 = new Tcp();
  await tcp2.connect();
  const tcp2Id = (await tcp2.request('detailsView')).data.id;
  await tcp2.request('roomChange lobby');
  await page.locator('#log li.announce', { hasText: 'has entered the room lobby' }).waitFor();
  await page.locator('#members-count', { hasText: '(3)' }).waitFor();
  await page.locator(`#members li[title="${tcp2Id}"]`).waitFor();

  // It leaves, then a third joins and drops its connection: the list follows each.
  await tcp2.request('roomLeave');
  await page.locator('#members-count', { hasText: '(2)' }).waitFor();
  await page.locator(`#members li[title="${tcp2Id}"]`).waitFor({ state: 'detached' });
  const tcp3 = new Tcp();
  await tcp3.connect();
  const tcp3Id = (await tcp3.request('detailsView')).data.id;
  await tcp3.request('roomChange lobby');
  await page.locator(`#members li[title="${tcp3Id}"]`).waitFor();
  await page.locator('#members-count', { hasText: '(3)' }).waitFor();
  tcp3.sock.destroy();
  await page.locator(`#members li[title="${tcp3Id}"]`).waitFor({ state: 'detached' });
  await page.locator('#members-count', { hasText: '(2)' }).waitFor();
  assert.deepEqual(
    (await page.locator('#members li').evaluateAll((lis) => lis.map((li) => li.title))).sort(),
    [pageId, tcpId].sort(), 'members after the joins and leaves');
  assert.equal(roomViews, viewsBefore, 'the member list asked roomView again');

  // Rejoined, it is back in the list.
  await tcp2.request('roomChange lobby');
  await page.locator(`#members li[title="${tcp2Id}"]`).waitFor();
  await page.locator('#members-count', { hasText: '(3)' }).waitFor();

  // Its connection is dropped (the admin API) while the TCP client says 20 messages: it
  // reconnects, goes back into lobby and shows each of the 20 once, in order, where they
  // belong -- after what it had seen, before what comes next.
  await admin('DELETE', `/api/connections/${pageId}`);
  await tcp.expect((m) => m.message === 'I have left the room' && m.from === pageId, "the page's leave");
  await page.locator('#log li.system .text', { hasText: /^disconnected/ }).waitFor();
  const N = 20;
  for (let i = 1; i <= N; i++) await tcp.request(`say missed ${i}`);
  await page.locator('#log li .text', { hasText: new RegExp(`^missed ${N}$`) }).waitFor({ timeout: 3 * TIMEOUT });
  await page.locator('#log li.system', { hasText: /missed messages? in lobby recovered/ }).waitFor();
  await tcp.request('say after the gap');
  await page.locator('#log li .text', { hasText: /^after the gap$/ }).waitFor();
  assert.deepEqual(await logTexts(page, /^(missed \d+|after the gap)$/),
    [...range(N, (i) => `missed ${i}`), 'after the gap'], 'the log after the gap');
  const recovered = await page.locator('#log li.recovered .text').evaluateAll((els) => els.map((e) => e.textContent));
  assert.ok(recovered.length >= 1 && recovered.every((t) => /^missed \d+$/.test(t)),
    `lines marked recovered: ${JSON.stringify(recovered)}`);
  assert.equal(await page.locator('#log li.lost').count(), 0, 'a lost note without a loss');
  // Back in the room, with the member list of it (its new connection among them).
  await page.locator('#current-room', { hasText: 'lobby' }).waitFor();
  const pageId2 = await page.locator('#me').getAttribute('title');
  assert.notEqual(pageId2, pageId);
  await page.locator(`#members li.self[title="${pageId2}"]`).waitFor();
  await page.locator('#members-count', { hasText: '(3)' }).waitFor();

  if (SCREENSHOT) await page.screenshot({ path: SCREENSHOT });
  assert.deepEqual(errors, [], 'errors in the page');
  tcp.sock.destroy();
  tcp2.sock.destroy();

  // A restart of roomd while the page is away (a roomd of this test's own, same ports): its
  // history is gone, the page says so, and the new stream's messages show as usual.
  const daemon = new Daemon({ starting_rooms: 'defaultRoom,lobby' });
  await daemon.start();
  try {
    const page2 = await context.newPage();
    page2.setDefaultTimeout(TIMEOUT);
    const errors2 = [];
    page2.on('pageerror', (e) => errors2.push(e.message));
    // (Chromium logs each failed reconnect attempt while roomd is down: not an error here.)
    page2.on('console', (m) => m.type() === 'error' && !/WebSocket connection to .* failed/.test(m.text()) &&
      errors2.push(m.text()));
    await page2.goto(`http://127.0.0.1:${daemon.wsPort}/`);
    await page2.locator('#status', { hasText: 'online' }).waitFor();
    await page2.fill('#room-input', 'lobby');
    await page2.click('#join');
    await page2.locator('#current-room', { hasText: 'lobby' }).waitFor();
    const before = new Tcp();
    await before.connect(daemon.tcpPort);
    await before.request('roomChange lobby');
    await before.request('say before the restart');
    await page2.locator('#log li .text', { hasText: /^before the restart$/ }).waitFor();
    before.sock.destroy();

    await daemon.restart();
    await page2.locator('#log li.lost', { hasText: 'some messages in lobby were lost while you were away' })
      .waitFor({ timeout: 3 * TIMEOUT });
    await page2.locator('#current-room', { hasText: 'lobby' }).waitFor();
    const after = new Tcp();
    await after.connect(daemon.tcpPort);
    await after.request('roomChange lobby');
    await after.request('say after the restart');
    await page2.locator('#log li .text', { hasText: /^after the restart$/ }).waitFor();
    after.sock.destroy();
    assert.deepEqual(await logTexts(page2, /the restart$/), ['before the restart', 'after the restart']);
    assert.equal(await page2.locator('#log li.lost').count(), 1);
    if (SCREENSHOT) await page2.screenshot({ path: SCREENSHOT.replace(/(\.png)?$/, '-lost.png') });
    assert.deepEqual(errors2, [], 'errors in the page');
  } finally {
    await daemon.stop();
  }
  // The Redis store keeps history across a restart of the server the page talks to: while
  // it is down, a client of another server on the same Redis says 20 messages; the page
  // comes back and shows every one of them once, in order, and no lost note.
  if (process.env.REDIS_URL) {
    const shared = { store: process.env.REDIS_URL, starting_rooms: 'defaultRoom,lobby' };
    const a = new Daemon(shared), b = new Daemon(shared);
    await a.start();
    await b.start();
    try {
      const page3 = await context.newPage();
      page3.setDefaultTimeout(TIMEOUT);
      const errors3 = [];
      page3.on('pageerror', (e) => errors3.push(e.message));
      page3.on('console', (m) => m.type() === 'error' && !/WebSocket connection to .* failed/.test(m.text()) &&
        errors3.push(m.text()));
      await page3.goto(`http://127.0.0.1:${a.wsPort}/`);
      await page3.locator('#status', { hasText: 'online' }).waitFor();
      await page3.fill('#room-input', 'lobby');
      await page3.click('#join');
      await page3.locator('#current-room', { hasText: 'lobby' }).waitFor();
      const other = new Tcp();
      await other.connect(b.tcpPort);
      await other.request('roomChange lobby');
      await other.request('say redis before');
      await page3.locator('#log li .text', { hasText: /^redis before$/ }).waitFor();
      await a.stop();
      for (let i = 1; i <= N; i++) await other.request(`say redis missed ${i}`);
      assert.ok(await a._launch(), 'roomd did not start again');
      await page3.locator('#log li .text', { hasText: new RegExp(`^redis missed ${N}$`) })
        .waitFor({ timeout: 3 * TIMEOUT });
      await other.request('say redis after');
      await page3.locator('#log li .text', { hasText: /^redis after$/ }).waitFor();
      other.sock.destroy();
      assert.deepEqual(await logTexts(page3, /^redis /),
        ['redis before', ...range(N, (i) => `redis missed ${i}`), 'redis after'], 'the log across the restart');
      assert.equal(await page3.locator('#log li.lost').count(), 0, 'a lost note although Redis kept it');
      assert.deepEqual(errors3, [], 'errors in the page');
      console.log('demo page: recovered across a restart on the Redis store');
    } finally {
      await a.stop();
      await b.stop();
    }
  }
  console.log('demo page test passed' + (SCREENSHOT ? `; screenshot ${SCREENSHOT}` : ''));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
