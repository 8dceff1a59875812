// ws_node_helpers.mjs -- what the Node tests share: a TCP line client, a WebSocket client
// (Node's built-in one) with a backlog, and the admin API. Every wait has a deadline.
//
// The daemon is started by test_ws_node.py, which passes its ports in the environment:
// ROOMD_WS_PORT, ROOMD_TCP_PORT, ROOMD_ADMIN_PORT, ROOMD_ADMIN_KEY.

import net from 'node:net';

export const WS_PORT = Number(process.env.ROOMD_WS_PORT);
export const TCP_PORT = Number(process.env.ROOMD_TCP_PORT);
export const ADMIN_PORT = Number(process.env.ROOMD_ADMIN_PORT);
export const ADMIN_KEY = process.env.ROOMD_ADMIN_KEY;
export const WS_URL = `ws://127.0.0.1:${WS_PORT}/`;
export const TIMEOUT = 5000;
export const ENTERED = 'I have entered the room';
export const LEFT = 'I have left the room';

if (!WS_PORT || !TCP_PORT) throw new Error('run me through test_ws_node.py (ports in env)');

/* Whether every key of WANT equals (as JSON) the same key of MSG. */
export function matches(want, msg) {
  if (typeof want === 'function') return want(msg);
  return Object.entries(want).every(([k, v]) => k in msg && JSON.stringify(msg[k]) === JSON.stringify(v));
}

/* Messages arrive in a backlog; expect() takes the first matching one, waiting if needed. */
class Inbox {
  constructor() {
    this.backlog = [];
    this.waiters = [];
    this.closed = false;
  }

  push(raw) {
    this.backlog.push({ raw, msg: JSON.parse(raw) });
    this._wake();
  }

  end() {
    this.closed = true;
    this._wake();
  }

  _wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  async expectRaw(want, timeout = TIMEOUT) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const i = this.backlog.findIndex((m) => matches(want, m.msg));
      if (i >= 0) return this.backlog.splice(i, 1)[0].raw;
      if (this.closed) throw new Error(`closed before a message matching ${JSON.stringify(want)}`);
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`no message matching ${want.toString === Object.prototype.toString ? JSON.stringify(want) : want} within ${timeout} ms; backlog: ${this.backlog.map((m) => m.raw).join(' | ')}`);
      }
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async expect(want, timeout) {
    return JSON.parse(await this.expectRaw(want, timeout));
  }
}

/* A TCP line client: lines end in "\r\n", each one JSON. */
export class TcpClient {
  static async connect() {
    const c = new TcpClient(net.connect(TCP_PORT, '127.0.0.1'));
    await new Promise((resolve, reject) => {
      c.sock.once('connect', resolve);
      c.sock.once('error', reject);
    });
    c.welcome = await c.inbox.expect({ context: 'api' });
    return c;
  }

  constructor(sock) {
    this.inbox = new Inbox();
    this.count = 0;
    this.buf = '';
    this.sock = sock;
    sock.setEncoding('utf8');
    sock.on('data', (data) => {
      this.buf += data;
      let i;
      while ((i = this.buf.indexOf('\r\n')) >= 0) {
        this.inbox.push(this.buf.slice(0, i));
        this.buf = this.buf.slice(i + 2);
      }
    });
    sock.on('close', () => this.inbox.end());
  }

  async request(line) {
    this.sock.write(line + '\n');
    this.count++;
    return this.inbox.expect({ context: 'response', messageCount: this.count });
  }

  expect(want, timeout) {
    return this.inbox.expect(want, timeout);
  }

  expectRaw(want, timeout) {
    return this.inbox.expectRaw(want, timeout);
  }

  close() {
    this.sock.destroy();
  }
}

/* A client on Node's own WebSocket (undici's, written by nobody here). */
export class WsClient {
  static async connect(url = WS_URL) {
    const c = new WsClient(url);
    await new Promise((resolve, reject) => {
      c.ws.addEventListener('open', resolve, { once: true });
      c.ws.addEventListener('error', () => reject(new Error('WebSocket did not open')), { once: true });
    });
    c.welcomeRaw = await c.inbox.expectRaw({ context: 'api' });
    return c;
  }

  constructor(url) {
    this.inbox = new Inbox();
    this.count = 0;
    this.closeEvent = null;
    this.ws = new WebSocket(url);
    this.ws.binaryType = 'arraybuffer';
    this.closed = new Promise((resolve) => {
      this.ws.addEventListener('close', (ev) => {
        this.closeEvent = ev;
        this.inbox.end();
        resolve(ev);
      });
    });
    this.ws.addEventListener('message', (ev) => {
      if (typeof ev.data !== 'string') throw new Error('server sent a binary frame');
      this.inbox.push(ev.data);
    });
  }

  send(data) {
    this.ws.send(data);
    this.count++;
  }

  async requestRaw(data) {
    this.send(data);
    return this.inbox.expectRaw({ context: 'response', messageCount: this.count });
  }

  async request(data) {
    return JSON.parse(await this.requestRaw(data));
  }

  /* The reply's text without the history fields (a join's position, a
   * say's offset: PROTOCOL.md "History and recovery"), for tests of other
   * things. */
  async requestReply(data) {
    return stripHistory(await this.requestRaw(data));
  }

  expect(want, timeout) {
    return this.inbox.expect(want, timeout);
  }

  expectRaw(want, timeout) {
    return this.inbox.expectRaw(want, timeout);
  }

  /* Wait for the close event (with a deadline); returns it. */
  async waitClosed(timeout = TIMEOUT) {
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`still open after ${timeout} ms`)), timeout);
    });
    try {
      return await Promise.race([this.closed, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  close() {
    if (this.ws.readyState <= 1) this.ws.close();
  }
}

export async function admin(method, path, body) {
  const res = await fetch(`http://127.0.0.1:${ADMIN_PORT}${path}`, {
    method,
    headers: { Authorization: `Bearer ${ADMIN_KEY}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(TIMEOUT),
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

export function stripHistory(text) {
  return text.replace(/,"position":\{"epoch":"[0-9a-f]{12}","offset":\d+\}|,"offset":\d+(?=,"messageCount")/g, '');
}

/* Exact texts of server messages, as PROTOCOL.md writes them. */
export function okText(count, data) {
  const d = data === undefined ? '' : `"data":${JSON.stringify(data)},`;
  return `{"status":"OK","context":"response",${d}"messageCount":${count}}`;
}

export function errText(text, count) {
  const t = JSON.stringify(text);
  return `{"status":${t},"context":"response","error":${t},"data":false,"messageCount":${count}}`;
}

export function chatRegex(message, room, from) {
  const esc = (s) => JSON.stringify(s).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^\\{"message":${esc(message)},"room":${esc(room)},"from":${esc(from)},"context":"user","sentAt":(\\d+)(?:,"offset":\\d+)?\\}$`);
}
