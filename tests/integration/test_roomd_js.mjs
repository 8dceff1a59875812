// test_roomd_js.mjs -- the browser client library /roomd.js, run in Node on Node's own
// WebSocket: promises matched to replies by messageCount, events, reconnecting with
// back-off into the room it was in, and recovering what it missed meanwhile (PROTOCOL.md
// "History and recovery"). Run by test_ws_node.py, which starts the daemon; the restart
// test starts a roomd of its own (roomd_daemon.mjs).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { after, test } from 'node:test';

import { Daemon } from './roomd_daemon.mjs';
import { ENTERED, LEFT, TcpClient, TIMEOUT, WS_PORT, WS_URL, admin } from './ws_node_helpers.mjs';

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

/* ---- recovery (PROTOCOL.md "History and recovery") ------------------------------------ */

/* What C hands the application: every chat 'say' with an offset (room, message, offset,
 * and whether it came as a recovered one), every 'recovered' and 'lost'; until() waits
 * for a condition on them, with a deadline. */
function record(c) {
  const r = {
    says: [], recovered: [], lost: [], waiters: [],
    of(room, prefix) {
      return r.says.filter((m) => m.room === room && m.message.startsWith(prefix));
    },
    async until(predicate, what, timeout = 2 * TIMEOUT) {
      const deadline = Date.now() + timeout;
      while (!predicate()) {
        const left = deadline - Date.now();
        if (left <= 0) {
          throw new Error(`no ${what} within ${timeout} ms; says ${JSON.stringify(r.says)}; ` +
            `recovered ${JSON.stringify(r.recovered)}; lost ${JSON.stringify(r.lost)}`);
        }
        await new Promise((resolve) => {
          const t = setTimeout(resolve, left);
          r.waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    },
  };
  const wake = () => r.waiters.splice(0).forEach((w) => w());
  c.on('say', (m, info) => {
    if (typeof m.offset !== 'number') return; // announcements are not in the stream
    r.says.push({ room: m.room, message: m.message, offset: m.offset, recovered: info.recovered });
    wake();
  });
  c.on('recovered', (e) => {
    r.recovered.push(e);
    wake();
  });
  c.on('lost', (e) => {
    r.lost.push(e);
    wake();
  });
  return r;
}

/* MSGS (from record) are exactly TEXTS, in this order, offsets rising one by one (but
 * for the offsets in SKIPPED: messages the client said itself, which it does not hear). */
function assertStream(msgs, texts, what, skipped = []) {
  assert.deepEqual(msgs.map((m) => m.message), texts, `${what}: the messages`);
  msgs.forEach((m, i) => {
    if (i === 0) return;
    let want = msgs[i - 1].offset + 1;
    while (skipped.includes(want)) want++;
    assert.equal(m.offset, want, `${what}: offsets`);
  });
}

const range = (n, f) => Array.from({ length: n }, (_, i) => f(i + 1));

/* Drop C's connection from the server side (admin API) and wait until it is out of every
 * room: WATCHER, a member of C's room, has heard it leave. */
async function dropFromServer(c, watcher) {
  const id = (await c.detailsView()).id;
  const bye = next(c, 'goodbye');
  assert.equal((await admin('DELETE', `/api/connections/${id}`)).status, 200);
  assert.equal((await bye).reason, 'disconnected by server');
  await watcher.expect({ message: LEFT, from: id });
}

test('after a drop it recovers its room: every missed message once, in order', async () => {
  const N = 12;
  const c = client({ minDelay: 300, maxDelay: 600 });
  const rec = record(c);
  await next(c, 'welcome');
  assert.equal(await c.roomChange('lobby'), true);
  const t = await tcp();
  assert.equal((await t.request('roomChange lobby')).status, 'OK');
  for (let i = 1; i <= 3; i++) assert.equal((await t.request(`say A before ${i}`)).status, 'OK');
  await rec.until(() => rec.of('lobby', 'A ').length === 3, 'the first 3 messages');
  // Its own say: the server keeps it in the history, the client must not hand it back.
  await c.say('A mine');
  const mineOffset = (await t.expect({ message: 'A mine' })).offset;

  await dropFromServer(c, t);
  for (let i = 1; i <= N; i++) assert.equal((await t.request(`say A gap ${i}`)).status, 'OK');
  await rec.until(() => rec.recovered.some((e) => e.room === 'lobby'), "'recovered' for lobby");
  const r = rec.recovered.find((e) => e.room === 'lobby');
  assert.equal(r.count, N);
  assert.match(r.position.epoch, /^[0-9a-f]{12}$/);
  for (let i = 1; i <= 2; i++) assert.equal((await t.request(`say A after ${i}`)).status, 'OK');
  await rec.until(() => rec.of('lobby', 'A ').length >= 3 + N + 2, 'every message');

  const msgs = rec.of('lobby', 'A ');
  assertStream(msgs,
    [...range(3, (i) => `A before ${i}`), ...range(N, (i) => `A gap ${i}`), ...range(2, (i) => `A after ${i}`)],
    'lobby', [mineOffset]);
  assert.deepEqual(msgs.map((m) => m.recovered),
    [...range(3, () => false), ...range(N, () => true), ...range(2, () => false)]);
  assert.deepEqual(rec.lost, []);
  assert.equal(c.room, 'lobby');
  assert.deepEqual(c.position('lobby'), { epoch: r.position.epoch, offset: msgs[msgs.length - 1].offset });
});

test('after its socket is closed it recovers its room and a listened room', async () => {
  const N = 8;
  const c = client({ minDelay: 300, maxDelay: 600 });
  const rec = record(c);
  await next(c, 'welcome');
  await c.roomChange('other');
  await c.listenToRoom('lobby');
  const id = (await c.detailsView()).id;
  const inLobby = await tcp();
  const inOther = await tcp();
  assert.equal((await inLobby.request('roomChange lobby')).status, 'OK');
  assert.equal((await inOther.request('roomChange other')).status, 'OK');
  await inLobby.request('say B lobby before');
  await inOther.request('say B other before');
  await rec.until(() => rec.of('lobby', 'B ').length === 1 && rec.of('other', 'B ').length === 1,
    'the first messages');

  // The connection goes away under it (as on a network failure: no goodbye).
  const closed = next(c, 'close');
  c._ws.close();
  assert.notEqual((await closed).reconnectIn, null);
  await inOther.expect({ message: LEFT, from: id });
  for (let i = 1; i <= N; i++) {
    assert.equal((await inLobby.request(`say B lobby gap ${i}`)).status, 'OK');
    assert.equal((await inOther.request(`say B other gap ${i}`)).status, 'OK');
  }
  await rec.until(() => rec.recovered.length === 2, "'recovered' for both rooms");
  assert.deepEqual(rec.recovered.map((e) => [e.room, e.count]).sort(), [['lobby', N], ['other', N]]);
  await inLobby.request('say B lobby after');
  await inOther.request('say B other after');
  await rec.until(() => rec.of('lobby', 'B ').length >= N + 2 && rec.of('other', 'B ').length >= N + 2,
    'every message');
  for (const room of ['lobby', 'other']) {
    assertStream(rec.of(room, 'B '),
      [`B ${room} before`, ...range(N, (i) => `B ${room} gap ${i}`), `B ${room} after`], room);
  }
  assert.deepEqual(rec.lost, []);
  const details = await c.detailsView();
  assert.equal(details.room, 'other');
  assert.deepEqual(details.listeningRooms, ['lobby']);
});

test('in the default room it recovers with roomHistory, merging live messages by offset', async () => {
  const sent = [];
  class SpyWebSocket extends WebSocket {
    send(data) {
      sent.push(JSON.parse(data));
      super.send(data);
    }
  }
  const c = client({ minDelay: 100, maxDelay: 200, WebSocket: SpyWebSocket });
  const rec = record(c);
  assert.equal((await next(c, 'welcome')).room, 'defaultRoom');
  const t = await tcp(); // a new TCP connection is in defaultRoom too
  assert.equal(t.welcome.room, 'defaultRoom');
  await t.request('say C before');
  await rec.until(() => rec.of('defaultRoom', 'C ').length === 1, 'the first message');

  await dropFromServer(c, t);
  sent.length = 0;
  // One message every few ms (under say_rate), on and on while the client reconnects and
  // catches up -- so live messages come in while its roomHistory is under way -- and a few
  // after it has recovered.
  let said = 0;
  let after = -1;
  while (after < 5 && said < 180) {
    assert.equal((await t.request(`say C ${++said}`)).status, 'OK');
    if (after >= 0 || rec.recovered.length) after++;
    await new Promise((resolve) => setTimeout(resolve, 4)); // the sender's pace, not a wait
  }
  assert.ok(rec.recovered.length, `no 'recovered' after ${said} messages`);
  await rec.until(() => rec.of('defaultRoom', 'C ').length >= said + 1, 'every message');
  assertStream(rec.of('defaultRoom', 'C '), ['C before', ...range(said, (i) => `C ${i}`)], 'defaultRoom');
  const r = rec.recovered[0];
  assert.equal(r.room, 'defaultRoom');
  assert.ok(r.count >= 1, `recovered ${r.count}`);
  assert.ok(rec.of('defaultRoom', 'C ').filter((m) => m.recovered).length === r.count);
  assert.deepEqual(rec.lost, []);
  // It was put back into the room by the server: it asked roomHistory, it did not join.
  const history = sent.filter((f) => f.event === 'roomHistory');
  assert.equal(history.length, 1, JSON.stringify(sent));
  assert.equal(history[0].room, 'defaultRoom');
  assert.equal(history[0].since.epoch, r.position.epoch);
  assert.ok(!sent.some((f) => f.event === 'roomChange'), JSON.stringify(sent));
  assert.equal(c.room, 'defaultRoom');
});

test('a restart of roomd (new epochs) gives lost for its room, a listened room and the default room', async () => {
  const d = new Daemon({ starting_rooms: 'defaultRoom,lobby,other' });
  await d.start();
  const mine = [];
  const own = (opts) => {
    const c = new Roomd(d.wsUrl, Object.assign({ minDelay: 100, maxDelay: 300 }, opts));
    mine.push(c);
    return c;
  };
  try {
    const a = own(); // in lobby, listening to other
    const b = own(); // in the default room
    const recA = record(a);
    const recB = record(b);
    await Promise.all([next(a, 'welcome'), next(b, 'welcome')]);
    await a.roomChange('lobby');
    await a.listenToRoom('other');
    await b.roomHistory('defaultRoom', { limit: 0 }); // after it: b knows the epoch
    const before = {
      lobby: a.position('lobby'), other: a.position('other'), defaultRoom: b.position('defaultRoom'),
    };
    for (const p of Object.values(before)) assert.match(p.epoch, /^[0-9a-f]{12}$/);

    // Something said in each room, so there is something to lose.
    const sayIn = async (room, text) => {
      const s = own({ reconnect: false });
      await next(s, 'welcome');
      if (room !== 'defaultRoom') await s.roomChange(room);
      await s.say(text);
      s.close();
    };
    await sayIn('lobby', 'D lobby before');
    await sayIn('other', 'D other before');
    await sayIn('defaultRoom', 'D defaultRoom before');
    await recA.until(() => recA.says.length === 2, "a's first messages");
    await recB.until(() => recB.says.length === 1, "b's first message");

    await d.restart();
    await recA.until(() => recA.lost.length === 2, "a's 'lost' events");
    await recB.until(() => recB.lost.length === 1, "b's 'lost' event");
    assert.deepEqual(recA.lost.map((e) => e.room).sort(), ['lobby', 'other']);
    assert.equal(recB.lost[0].room, 'defaultRoom');
    for (const e of [...recA.lost, ...recB.lost]) {
      assert.notEqual(e.position.epoch, before[e.room].epoch, `${e.room}: the same epoch`);
    }
    assert.deepEqual([...recA.recovered, ...recB.recovered], []);

    // The new streams count from 1 again: their messages are not taken for old ones.
    await sayIn('lobby', 'D lobby after');
    await sayIn('other', 'D other after');
    await sayIn('defaultRoom', 'D defaultRoom after');
    await recA.until(() => recA.says.length === 4, "a's messages after the restart");
    await recB.until(() => recB.says.length === 2, "b's message after the restart");
    assert.deepEqual(recA.of('lobby', 'D ').map((m) => m.message), ['D lobby before', 'D lobby after']);
    assert.deepEqual(recA.of('other', 'D ').map((m) => m.message), ['D other before', 'D other after']);
    assert.deepEqual(recB.says.map((m) => m.message), ['D defaultRoom before', 'D defaultRoom after']);
    assert.equal(recA.of('lobby', 'D ')[1].offset, 1);
    assert.equal(a.room, 'lobby');
    assert.deepEqual([...a.listening], ['other']);
  } finally {
    mine.forEach((c) => c.close());
    await d.stop();
  }
});
