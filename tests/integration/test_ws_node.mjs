// test_ws_node.mjs -- Node's built-in WebSocket (a client nobody here wrote) against roomd,
// chatting with a TCP line client in the same rooms. Run by test_ws_node.py, which starts
// the daemon: node --experimental-websocket test_ws_node.mjs

import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import {
  ENTERED, LEFT, TcpClient, WsClient, admin, chatRegex, errText, okText,
} from './ws_node_helpers.mjs';

const open = [];
after(() => open.forEach((c) => c.close()));

async function ws() {
  const c = await WsClient.connect();
  open.push(c);
  return c;
}

async function tcp() {
  const c = await TcpClient.connect();
  open.push(c);
  return c;
}

test('welcome is one exact text frame', async () => {
  const w = await ws();
  assert.equal(w.welcomeRaw, '{"welcome":"Hello! Welcome to the roomd api","room":"defaultRoom","context":"api"}');
});

test('WebSocket and TCP clients chat both ways in one room', async () => {
  const t = await tcp();
  const w = await ws();
  const wid = (await w.request('detailsView')).data.id;
  const tid = (await t.request('detailsView')).data.id;
  assert.match(await t.expectRaw({ message: ENTERED, from: wid }), chatRegex(ENTERED, 'defaultRoom', wid));

  assert.equal(await w.requestReply(JSON.stringify({ event: 'say', message: 'from node, "quoted" ✓' })), okText(2));
  const heard = await t.expectRaw({ message: 'from node, "quoted" ✓' });
  const sentAt = Number(heard.match(chatRegex('from node, "quoted" ✓', 'defaultRoom', wid))[1]);
  assert.ok(Math.abs(sentAt - Date.now()) < 60000, `sentAt ${sentAt} is not ms near now`);

  assert.equal((await t.request('say hello node')).status, 'OK');
  assert.match(await w.expectRaw({ message: 'hello node' }), chatRegex('hello node', 'defaultRoom', tid));
});

test('every verb over Node WebSocket', async () => {
  const w = await ws();
  assert.equal(await w.requestReply('roomChange lobby'), okText(1, true));
  assert.equal(await w.requestRaw('roomChange nowhere'), errText('room does not exist', 2));
  const view = await w.request('roomView');
  assert.equal(view.data.room, 'lobby');
  assert.equal(view.data.membersCount, 1);
  assert.equal(await w.requestReply('listenToRoom defaultRoom'), okText(4, true));
  assert.equal(await w.requestReply('silenceRoom defaultRoom'), okText(5, true));
  assert.equal(await w.requestReply('say hi'), okText(6));
  assert.equal(await w.requestReply('{"event":"paramAdd","key":"k","value":"v"}'), okText(7, null));
  assert.equal(await w.requestReply('paramView k'), okText(8, 'v'));
  assert.equal(await w.requestReply('paramsView'), okText(9, { k: 'v' }));
  assert.equal(await w.requestReply('paramDelete k'), okText(10, null));
  assert.equal(await w.requestReply('paramsDelete'), okText(11, null));
  const details = await w.request('detailsView');
  assert.equal(details.data.type, 'websocket');
  assert.equal(await w.requestRaw('auth abc'), errText('auth is disabled', 13));
  assert.equal(await w.requestRaw('fly'), errText('verb not found or not allowed', 14));
  assert.equal(await w.requestReply('roomLeave'), okText(15, true));
});

test('a binary frame gets an error reply and the connection lives', async () => {
  const w = await ws();
  assert.equal(await w.requestRaw(new Uint8Array([1, 2, 3])), errText('binary frames are not supported', 1));
  assert.equal(await w.requestReply('paramsView'), okText(2, {}));
});

test('auth pattern type = websocket admits Node, not TCP', async () => {
  assert.equal((await admin('POST', '/api/rooms', { room: 'nodeonly' })).status, 200);
  assert.equal((await admin('PUT', '/api/rooms/nodeonly/pattern', { key: 'type', value: 'websocket' })).status, 200);
  const w = await ws();
  const t = await tcp();
  assert.equal(await w.requestReply('roomChange nodeonly'), okText(1, true));
  assert.equal((await t.request('roomChange nodeonly')).error, 'not authorized to join room');
});

test('quit: goodbye, then close 1000', async () => {
  const t = await tcp();
  const w = await ws();
  const wid = (await w.request('detailsView')).data.id;
  w.send('quit');
  assert.equal(await w.expectRaw({ status: 'Bye!' }), '{"status":"Bye!","context":"api","reason":"quit requested"}');
  const ev = await w.waitClosed();
  assert.equal(ev.code, 1000);
  await t.expect({ message: LEFT, from: wid });
});

test('the client closes: the server answers with the same code', async () => {
  const w = await ws();
  w.ws.close(4001, 'done here');
  const ev = await w.waitClosed();
  assert.equal(ev.code, 4001);
  assert.equal(ev.wasClean, true);
});

test('disconnected by the server: goodbye, close 1000', async () => {
  const w = await ws();
  const wid = (await w.request('detailsView')).data.id;
  assert.equal((await admin('DELETE', `/api/connections/${wid}`)).status, 200);
  assert.equal((await w.expect({ status: 'Bye!' })).reason, 'disconnected by server');
  assert.equal((await w.waitClosed()).code, 1000);
});
