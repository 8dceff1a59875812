// test_roomd_js.mjs -- the browser client library /roomd.js, run in Node on Node's own
// WebSocket: promises matched to replies by messageCount, events, and reconnecting with
// back-off into the room it was in. Run by test_ws_node.py, which starts the daemon.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { after, test } from 'node:test';

import { ENTERED, TcpClient, TIMEOUT, WS_PORT, WS_URL, admin } from './ws_node_helpers.mjs';

const SOURCE = new URL('../../src/static/roomd.js', import.meta.url);
const Roomd = createRequire(import.meta.url)(SOURCE.pathname);

const open = [];
after(() => open.forEach((c) => c.close()));

function client(options) {
  const c = new Roomd(WS_URL, options);
  open.push(c);
  return c;
}

/* The next EVENT of C (its argument), with a deadline. */
function next(c, event, timeout = TIMEOUT) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no '${event}' within ${timeout} ms`)), timeout);
    c.once(event, (arg) => {
      clearTimeout(t);
      resolve(arg);
    });
  });
}

/* Wait until PREDICATE holds (checked on every EVENT of C). */
async function until(c, event, predicate, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const arg = await next(c, event, Math.max(1, deadline - Date.now()));
    if (predicate(arg)) return arg;
  }
}

async function tcp() {
  const t = await TcpClient.connect();
  open.push(t);
  return t;
}

test('the server serves this very file at /roomd.js', async () => {
  const res = await fetch(`http://127.0.0.1:${WS_PORT}/roomd.js`, { signal: AbortSignal.timeout(TIMEOUT) });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/javascript; charset=utf-8');
  assert.equal(await res.text(), readFileSync(SOURCE, 'utf8'));
});

test('welcome, room, verbs as promises, chat events', async () => {
  const c = client();
  const welcome = await next(c, 'welcome');
  assert.equal(welcome.welcome, 'Hello! Welcome to the roomd api');
  assert.equal(c.room, 'defaultRoom');
  const t = await tcp();
  assert.equal((await t.request('roomChange lobby')).status, 'OK');

  const roomEvent = next(c, 'room');
  assert.equal(await c.roomChange('lobby'), true);
  assert.equal(await roomEvent, 'lobby');
  const me = await c.detailsView();
  assert.equal(me.type, 'websocket');
  assert.equal(c.id, me.id);
  await t.expect({ message: ENTERED, from: me.id });

  assert.equal(await c.say('hi from roomd.js'), undefined);
  await t.expect({ message: 'hi from roomd.js', room: 'lobby', from: me.id });
  const heard = next(c, 'say');
  await t.request('say hi library');
  const m = await heard;
  assert.equal(m.message, 'hi library');
  assert.equal(m.room, 'lobby');

  const view = await c.roomView();
  assert.equal(view.membersCount, 2);
  assert.ok(me.id in view.members);

  // Errors reject with the reply; later requests still match their own replies.
  await assert.rejects(c.roomChange('nowhere'), (err) => {
    assert.equal(err.name, 'RoomdError');
    assert.equal(err.message, 'room does not exist');
    assert.equal(err.reply.status, 'room does not exist');
    return true;
  });
  assert.equal(c.room, 'lobby');

  // Many requests in flight at once, each resolved by its own reply.
  const results = await Promise.all([
    c.paramAdd('color', 'blue'), c.paramView('color'), c.paramAdd('size', 'XL'), c.paramsView(),
    c.paramDelete('color'), c.paramView('color'),
  ]);
  assert.deepEqual(results, [null, 'blue', null, { color: 'blue', size: 'XL' }, null, undefined]);
  assert.equal(await c.listenToRoom('defaultRoom'), true);
  assert.deepEqual([...c.listening], ['defaultRoom']);
  assert.equal(await c.silenceRoom('defaultRoom'), true);
  await assert.rejects(c.auth('x.y.z'), /auth is disabled/);

  // Direct messages from the server side.
  const direct = next(c, 'direct');
  await admin('POST', `/api/connections/${me.id}/message`, { message: { hello: 'you' } });
  assert.deepEqual((await direct).message, { hello: 'you' });
});

test('reconnects with back-off and goes back to its room and listening', async () => {
  const c = client({ minDelay: 100, maxDelay: 400 });
  await next(c, 'welcome');
  await c.roomChange('lobby');
  await c.listenToRoom('other');
  const first = (await c.detailsView()).id;
  const t = await tcp();
  assert.equal((await t.request('roomChange lobby')).status, 'OK');

  // The server drops it: goodbye, close, then a new connection after the back-off.
  const closed = next(c, 'close');
  assert.equal((await admin('DELETE', `/api/connections/${first}`)).status, 200);
  const ev = await closed;
  assert.equal(ev.code, 1000);
  assert.ok(ev.reconnectIn >= 50 && ev.reconnectIn <= 100, `reconnectIn ${ev.reconnectIn}`);
  await until(c, 'room', (room) => room === 'lobby', 2 * TIMEOUT);
  const second = (await c.detailsView()).id;
  assert.notEqual(second, first);
  await t.expect({ message: ENTERED, room: 'lobby', from: second });
  const details = await c.detailsView();
  assert.equal(details.room, 'lobby');
  assert.deepEqual(details.listeningRooms, ['other']);
  // Back in the room for real: chat flows again.
  await c.say('back again');
  await t.expect({ message: 'back again', from: second });
});

test('back-off grows while the server is unreachable', async () => {
  // A port nobody listens on: each attempt fails, each delay is longer (with jitter in
  // [delay/2, delay]), up to maxDelay.
  const c = new Roomd('ws://127.0.0.1:1/', { minDelay: 20, maxDelay: 80 });
  open.push(c);
  const delays = [];
  for (let i = 0; i < 4; i++) delays.push((await next(c, 'close')).reconnectIn);
  c.close();
  const bases = [20, 40, 80, 80];
  delays.forEach((d, i) => assert.ok(d >= bases[i] / 2 && d <= bases[i], `attempt ${i}: ${d} ms`));
});

test('quit says goodbye and does not reconnect', async () => {
  const c = client({ minDelay: 50 });
  await next(c, 'welcome');
  const bye = await c.quit();
  assert.equal(bye.reason, 'quit requested');
  assert.equal(c.connected, false);
  await assert.rejects(c.say('too late'), /not connected/);
});

test('a pending request is rejected when the connection drops', async () => {
  const c = client({ reconnect: false });
  await next(c, 'welcome');
  const id = (await c.detailsView()).id;
  const closed = next(c, 'close');
  // Disconnect it and, in the same breath, ask something it will never hear back about.
  const pending = admin('DELETE', `/api/connections/${id}`).then(() => c.roomView());
  await assert.rejects(pending, /not connected|connection closed/);
  assert.equal((await closed).reconnectIn, null);
});
