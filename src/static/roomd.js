/* roomd.js -- a small browser client for roomd's WebSocket port.
 *
 *   <script src="/roomd.js"></script>
 *   const chat = new Roomd();              // ws(s)://<this page's host>/
 *   chat.on('welcome', (w) => console.log(w.welcome, 'in', w.room));
 *   chat.on('say', (m) => console.log(m.from, 'said', m.message, 'in', m.room));
 *   await chat.roomChange('lobby');        // resolves with the reply's data
 *   await chat.say('hello');               // rejects with a RoomdError on an error reply
 *
 * Every verb of the protocol is a method returning a promise.  Requests go out as JSON
 * frames ({"event":"say","message":…}), so room names and messages may hold any
 * characters.  Replies are matched to requests by messageCount: the server numbers every
 * frame it receives on a connection from 1, and so does this client, frame by frame.
 *
 * When the connection drops (server restart, network), the client reconnects with
 * exponential back-off and, once welcomed again, goes back to the room it was in (and to
 * the rooms it listened to).  quit() and close() end it for good.
 *
 * Events (on/off/once): 'open', 'welcome' (the welcome object), 'room' (the room the
 * connection is now in, or null), 'message' (any chat: room chat, announcements, direct
 * messages), 'say' (chat in a room), 'direct' (a message to this connection alone),
 * 'goodbye' (the server's goodbye object), 'close' ({code, reason, reconnectIn}; reconnectIn
 * is null when the client will not reconnect), 'error' (a failed rejoin).
 */
(function (root, factory) {
  const Roomd = factory();
  if (typeof module === 'object' && module.exports) module.exports = Roomd;
  else root.Roomd = Roomd;
})(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  const OPEN = 1; // WebSocket.OPEN

  const DEFAULTS = {
    reconnect: true,
    minDelay: 500, // ms before the first reconnect attempt
    maxDelay: 30000, // the back-off stops growing here
    factor: 2, // each failed attempt multiplies the delay
    timeout: 10000, // ms to wait for a reply before a request rejects
    WebSocket: null, // a WebSocket class to use instead of the global one
  };

  /* An error reply ({"status":"room does not exist",…}) or a local failure. */
  class RoomdError extends Error {
    constructor(message, reply) {
      super(message);
      this.name = 'RoomdError';
      this.reply = reply || null;
    }
  }

  function defaultUrl() {
    if (typeof location === 'undefined') throw new RoomdError('new Roomd(url): url is required');
    return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/';
  }

  class Roomd {
    constructor(url, options) {
      this.url = url || defaultUrl();
      this.options = Object.assign({}, DEFAULTS, options || {});
      this.id = null; // this connection's id, once detailsView told it
      this.room = null; // the room the server has this connection in
      this.welcome = null; // the last welcome object
      this.listening = new Set(); // rooms listened to, re-listened after a reconnect
      this._wanted = undefined; // the room to be in: undefined = the server's default
      this._handlers = new Map();
      this._pending = new Map(); // messageCount -> {resolve, reject, timer}
      this._count = 0;
      this._attempt = 0;
      this._timer = null;
      this._ended = false;
      this._ws = null;
      this._connect();
    }

    /* ---- events ---------------------------------------------------------------------- */

    on(event, fn) {
      if (!this._handlers.has(event)) this._handlers.set(event, new Set());
      this._handlers.get(event).add(fn);
      return this;
    }

    off(event, fn) {
      const set = this._handlers.get(event);
      if (set) set.delete(fn);
      return this;
    }

    once(event, fn) {
      const wrapper = (arg) => {
        this.off(event, wrapper);
        fn(arg);
      };
      return this.on(event, wrapper);
    }

    _emit(event, arg) {
      const set = this._handlers.get(event);
      if (!set) return;
      for (const fn of Array.from(set)) {
        try {
          fn(arg);
        } catch (e) {
          setTimeout(() => {
            throw e;
          }); // a handler's bug must not break the client
        }
      }
    }

    /* ---- the connection -------------------------------------------------------------- */

    get connected() {
      return !!this._ws && this._ws.readyState === OPEN;
    }

    _connect() {
      const WS = this.options.WebSocket || (typeof WebSocket !== 'undefined' ? WebSocket : null);
      if (!WS) throw new RoomdError('no WebSocket implementation available');
      const ws = new WS(this.url);
      this._ws = ws;
      this._count = 0; // messageCount starts again on every connection
      ws.onopen = () => this._emit('open');
      ws.onmessage = (ev) => this._onFrame(ev.data);
      // Browsers follow an error with a close event; some WebSockets (Node 20's, when the
      // connection cannot be made) never do, so an error not closed by then counts as one.
      ws.onerror = () => setTimeout(() => this._onClose(ws, { code: 1006, reason: '' }), 0);
      ws.onclose = (ev) => this._onClose(ws, ev);
    }

    _onClose(ws, ev) {
      if (ws !== this._ws) return;
      this._ws = null;
      this.room = null;
      for (const [, p] of this._pending) {
        clearTimeout(p.timer);
        p.reject(new RoomdError('connection closed'));
      }
      this._pending.clear();
      let reconnectIn = null;
      if (!this._ended && this.options.reconnect) {
        const o = this.options;
        const base = Math.min(o.maxDelay, o.minDelay * Math.pow(o.factor, this._attempt++));
        reconnectIn = Math.round(base * (0.5 + Math.random() / 2)); // jitter: no stampede
        this._timer = setTimeout(() => {
          this._timer = null;
          if (!this._ended) this._connect();
        }, reconnectIn);
      }
      this._emit('close', { code: ev.code, reason: ev.reason, reconnectIn: reconnectIn });
    }

    _onFrame(text) {
      let msg;
      try {
        msg = JSON.parse(text);
      } catch (e) {
        return; // every server frame is JSON; ignore anything else
      }
      if (msg.context === 'response') {
        const p = this._pending.get(msg.messageCount);
        if (!p) return;
        this._pending.delete(msg.messageCount);
        clearTimeout(p.timer);
        if (msg.status === 'OK') p.resolve(msg.data);
        else p.reject(new RoomdError(msg.error || msg.status, msg));
      } else if (msg.context === 'api' && 'welcome' in msg) {
        this._attempt = 0; // welcomed: the next drop starts the back-off again
        this.welcome = msg;
        this._setRoom(msg.room);
        this._emit('welcome', msg);
        this._rejoin();
      } else if (msg.context === 'api' && msg.status === 'Bye!') {
        this._emit('goodbye', msg);
      } else if (msg.context === 'user') {
        this._emit('message', msg);
        this._emit('room' in msg ? 'say' : 'direct', msg);
      }
    }

    /* After a reconnect the server has put the connection in its default room: go back
     * to where the application was, and listen again. */
    _rejoin() {
      const jobs = [];
      if (this._wanted !== undefined && this._wanted !== this.room) {
        jobs.push(this._wanted === null ? this.roomLeave() : this.roomChange(this._wanted));
      }
      for (const room of this.listening) {
        jobs.push(this.request({ event: 'listenToRoom', room: room }));
      }
      for (const job of jobs) job.catch((err) => this._emit('error', err));
    }

    _setRoom(room) {
      if (room === this.room) return;
      this.room = room;
      this._emit('room', room);
    }

    /* Send one request (an object with "event", or a verb line) and wait for its reply:
     * resolves with its data, rejects with a RoomdError. */
    request(req) {
      if (!this.connected) return Promise.reject(new RoomdError('not connected'));
      const count = ++this._count;
      this._ws.send(typeof req === 'string' ? req : JSON.stringify(req));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          this._pending.delete(count);
          reject(new RoomdError('no reply within ' + this.options.timeout + ' ms'));
        }, this.options.timeout);
        this._pending.set(count, { resolve: resolve, reject: reject, timer: timer });
      });
    }

    /* ---- the verbs ------------------------------------------------------------------- */

    roomChange(room) {
      return this.request({ event: 'roomChange', room: room }).then((data) => {
        this._wanted = room;
        this._setRoom(room);
        return data;
      });
    }

    roomLeave() {
      return this.request({ event: 'roomLeave' }).then((data) => {
        this._wanted = null;
        this._setRoom(null);
        return data;
      });
    }

    roomView() {
      return this.request({ event: 'roomView' });
    }

    listenToRoom(room) {
      return this.request({ event: 'listenToRoom', room: room }).then((data) => {
        this.listening.add(room);
        return data;
      });
    }

    silenceRoom(room) {
      return this.request({ event: 'silenceRoom', room: room }).then((data) => {
        this.listening.delete(room);
        return data;
      });
    }

    say(message) {
      return this.request({ event: 'say', message: message });
    }

    detailsView() {
      return this.request({ event: 'detailsView' }).then((data) => {
        this.id = data.id;
        return data;
      });
    }

    paramAdd(key, value) {
      return this.request({ event: 'paramAdd', key: key, value: value });
    }

    paramDelete(key) {
      return this.request({ event: 'paramDelete', key: key });
    }

    paramView(key) {
      return this.request({ event: 'paramView', key: key });
    }

    paramsView() {
      return this.request({ event: 'paramsView' });
    }

    paramsDelete() {
      return this.request({ event: 'paramsDelete' });
    }

    auth(token) {
      return this.request({ event: 'auth', token: token });
    }

    /* Leave for good: the server says goodbye and closes; resolves with the goodbye. */
    quit() {
      this._ended = true;
      if (!this.connected) return Promise.resolve(null);
      return new Promise((resolve) => {
        let bye = null;
        const onBye = (msg) => {
          bye = msg;
        };
        this.on('goodbye', onBye);
        this.once('close', () => {
          this.off('goodbye', onBye);
          resolve(bye);
        });
        this._ws.send(JSON.stringify({ event: 'quit' }));
        this._count++;
      });
    }

    /* Close without a goodbye and do not reconnect. */
    close() {
      this._ended = true;
      if (this._timer) clearTimeout(this._timer);
      this._timer = null;
      if (this._ws) this._ws.close(1000);
    }
  }

  Roomd.RoomdError = RoomdError;
  Roomd.ENTERED = 'I have entered the room';
  Roomd.LEFT = 'I have left the room';
  Roomd.DELETED = 'this room has been deleted';
  return Roomd;
});
