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
 * Recovery (PROTOCOL.md "History and recovery").  In rooms with history on, every chat
 * message carries an offset; the client remembers, per room, the stream's epoch and the
 * last offset it has handed to the application (from chat messages, the positions of
 * join / listen replies, roomHistory, and its own says' replies).  After a reconnect it
 * asks for what it missed: its room with roomChange + "since" (or, when the server has
 * already put it back into that room -- the default room --, with roomHistory + "since"),
 * every listened room with listenToRoom + "since".  Missed messages are emitted as
 * ordinary 'message' / 'say' events, in offset order, before any later one; a message
 * whose offset is not above the last one emitted for its room is never emitted (no
 * duplicates, and never one the application said itself).  Then, per room, either
 * 'recovered' or 'lost'.  position(room) tells the client's {epoch, offset} of a room.
 *
 * Events (on/off/once): 'open', 'welcome' (the welcome object), 'room' (the room the
 * connection is now in, or null), 'message' (any chat: room chat, announcements, direct
 * messages), 'say' (chat in a room), 'direct' (a message to this connection alone),
 * 'goodbye' (the server's goodbye object), 'close' ({code, reason, reconnectIn}; reconnectIn
 * is null when the client will not reconnect), 'error' (a failed rejoin),
 * 'recovered' ({room, count, position}: after a reconnect every message of ROOM missed
 * while away has been emitted, COUNT of them; position is the room's {epoch, offset}),
 * 'lost' ({room, position}: messages of ROOM sent while away cannot be had any more --
 * too old for its history, or the room's stream restarted (new epoch: roomd restarted,
 * the room was deleted and created again); messages from now on are emitted as usual).
 * 'message' and 'say' handlers get a second argument, {recovered: true|false}: true for a
 * message that was missed while away and is emitted by the recovery.
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
      // room -> {epoch, last, base, own}: the stream's epoch (null until a reply told it),
      // the last offset emitted, the offset recovery starts after at least (a join's
      // position), and offsets of this client's own says above last (it never hears them).
      this._streams = new Map();
      // room -> [chat message, …]: the room's messages held back while a recovery of it
      // is in flight, merged by offset when its reply comes.
      this._recovering = new Map();
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

    _emit(event, arg, extra) {
      const set = this._handlers.get(event);
      if (!set) return;
      for (const fn of Array.from(set)) {
        try {
          fn(arg, extra);
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
      // Messages held back for a recovery that will not answer now: not emitted, so the
      // next recovery asks for them again.  A stream whose epoch no reply told is of no
      // use on another connection.
      this._recovering.clear();
      for (const [room, st] of this._streams) if (st.epoch === null) this._streams.delete(room);
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
        if (msg.status === 'OK') p.resolve(msg);
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
        this._onChat(msg);
      }
    }

    /* ---- recovery -------------------------------------------------------------------- */

    _chat(msg, recovered) {
      const info = { recovered: !!recovered };
      this._emit('message', msg, info);
      this._emit('room' in msg ? 'say' : 'direct', msg, info);
    }

    _onChat(msg) {
      const room = msg.room;
      if (typeof room === 'string' && typeof msg.offset === 'number') {
        const held = this._recovering.get(room);
        if (held) {
          held.push(msg);
          return;
        }
        if (!this._take(room, msg.offset)) return;
      } else if (typeof room === 'string' && msg.message === Roomd.DELETED) {
        this._streams.delete(room); // a room of that name later is a new stream
      }
      this._chat(msg, false);
    }

    _stream(room) {
      let st = this._streams.get(room);
      if (!st) {
        st = { epoch: null, last: 0, base: 0, own: new Set() };
        this._streams.set(room, st);
      }
      return st;
    }

    /* Whether a message of ROOM at OFFSET is new (and, if so, it is now the last). */
    _take(room, offset) {
      const st = this._stream(room);
      if (offset <= st.last || st.own.has(offset)) return false;
      st.last = offset;
      this._prune(st);
      return true;
    }

    _prune(st) {
      for (const o of st.own) if (o <= st.last) st.own.delete(o);
      while (st.own.has(st.last + 1)) st.own.delete(++st.last);
    }

    /* The reply to this client's own say in ROOM said OFFSET: never emit it from history. */
    _said(room, offset) {
      const st = this._stream(room);
      if (offset > st.last) st.own.add(offset);
      this._prune(st);
    }

    /* The "since" to recover ROOM from, or null when the client knows nothing of it. */
    _since(room) {
      const st = this._streams.get(room);
      if (!st || st.epoch === null || this._recovering.has(room)) return null;
      return { epoch: st.epoch, offset: Math.max(st.last, st.base) };
    }

    /* Emit MSGS (chat messages of ROOM) in offset order, those not emitted yet; the ones
     * at or below UPTO are missed ones. Returns how many of those were emitted. */
    _merge(room, msgs, upto) {
      let count = 0;
      msgs.sort((a, b) => a.offset - b.offset);
      for (const m of msgs) {
        if (!this._take(room, m.offset)) continue;
        const missed = m.offset <= upto;
        if (missed) count++;
        this._chat(m, missed);
      }
      return count;
    }

    /* The position POS ({epoch, offset} or undefined) of ROOM has come in a reply: HOW is
     * 'join' (roomChange / listenToRoom: the first message heard is after POS),
     * 'history' (roomHistory since: the room was heard before POS) or 'probe' (roomHistory
     * asked only to learn the epoch).  RECOVERED is the reply's "recovered" (undefined
     * without a since), HISTORY roomHistory's messages, HELD the messages held back for
     * the request. Emits those not emitted yet, in order, and 'recovered' or 'lost'. */
    _position(room, pos, how, recovered, history, held) {
      held = held || [];
      if (!pos || typeof pos.epoch !== 'string' || typeof pos.offset !== 'number') {
        this._merge(room, held, 0); // history is off in ROOM (or an older server)
        return;
      }
      let st = this._streams.get(room);
      if (st && st.epoch !== null && st.epoch !== pos.epoch) st = null; // a new stream
      if (!st) {
        this._streams.delete(room);
        st = this._stream(room);
      }
      st.epoch = pos.epoch;
      st.base = Math.max(st.base, pos.offset);
      const position = { epoch: pos.epoch, offset: pos.offset };
      if (recovered === true) {
        const count = this._merge(room, (history || []).concat(held), pos.offset);
        if (how === 'join' && pos.offset > st.last) {
          st.last = pos.offset;
          this._prune(st);
        }
        this._emit('recovered', { room: room, count: count, position: position });
        return;
      }
      if (recovered === false) this._emit('lost', { room: room, position: position });
      if (how === 'join' && pos.offset > st.last) {
        // Heard from here on: a message of the room at or below POS is not news.
        st.last = pos.offset;
        this._prune(st);
      }
      this._merge(room, held, 0);
    }

    /* Hold back ROOM's messages until release(HELD) for the request being sent. */
    _hold(room) {
      const held = [];
      this._recovering.set(room, held);
      return held;
    }

    /* The messages HELD for ROOM, no longer held (none if the connection has closed). */
    _release(room, held) {
      if (!held || this._recovering.get(room) !== held) return null;
      this._recovering.delete(room);
      return held;
    }

    /* roomChange / listenToRoom ROOM, with a since when RECOVER and the client knows the
     * room's stream; JOINED() runs on success before any message is emitted. Resolves with
     * the reply's data. */
    _hear(event, room, recover, joined) {
      const since = recover ? this._since(room) : null;
      const req = { event: event, room: room };
      let held = null;
      if (since) {
        req.since = since;
        held = this._hold(room);
      }
      return this._call(req).then(
        (reply) => {
          const mine = this._release(room, held);
          if (joined) joined();
          if (!held || mine) {
            this._position(room, reply.position, 'join', since ? reply.recovered : undefined, null, mine);
          }
          return reply.data;
        },
        (err) => {
          const mine = this._release(room, held);
          if (mine) this._merge(room, mine, 0); // heard some other way: emit them
          throw err;
        }
      );
    }

    /* After a reconnect into ROOM (the server's default room, where the application is
     * too): ask roomHistory for what was missed, or only the stream's epoch. */
    _catchUp(room) {
      const since = this._since(room);
      const req = { event: 'roomHistory', room: room };
      let held = null;
      if (since) {
        req.since = since;
        held = this._hold(room);
      } else {
        req.limit = 0;
      }
      return this._call(req).then(
        (reply) => {
          const data = reply.data || {};
          const mine = this._release(room, held);
          if (!since) this._position(room, data.position, 'probe');
          else if (mine) this._position(room, data.position, 'history', data.recovered, data.messages, mine);
        },
        (err) => {
          const mine = this._release(room, held);
          if (mine) this._merge(room, mine, 0);
          if (since) throw err; // a probe's failure (the room was left meanwhile) is no news
        }
      );
    }

    /* The client's {epoch, offset} of ROOM (offset: the last message emitted or the
     * position it joined at), or null while it knows no epoch of the room. */
    position(room) {
      const st = this._streams.get(room);
      if (!st || st.epoch === null) return null;
      return { epoch: st.epoch, offset: Math.max(st.last, st.base) };
    }

    /* After a reconnect the server has put the connection in its default room: go back
     * to where the application was, and listen again, recovering what was missed. */
    _rejoin() {
      const jobs = [];
      const here = this.room;
      const want = this._wanted === undefined ? here : this._wanted;
      if (want !== here) {
        jobs.push(want === null ? this.roomLeave() : this._roomChange(want, true));
      } else if (here !== null) {
        jobs.push(this._catchUp(here));
      }
      for (const room of this.listening) {
        jobs.push(this._hear('listenToRoom', room, true));
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
      return this._call(req).then((reply) => reply.data);
    }

    /* request(), resolving with the whole reply. */
    _call(req) {
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
      return this._roomChange(room, false);
    }

    _roomChange(room, recover) {
      return this._hear('roomChange', room, recover, () => {
        this._wanted = room;
        this._setRoom(room); // 'room' before the messages missed in it
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
      return this._hear('listenToRoom', room, false, () => this.listening.add(room));
    }

    silenceRoom(room) {
      return this.request({ event: 'silenceRoom', room: room }).then((data) => {
        this.listening.delete(room);
        return data;
      });
    }

    say(message) {
      const room = this.room;
      return this._call({ event: 'say', message: message }).then((reply) => {
        if (room !== null && typeof reply.offset === 'number') this._said(room, reply.offset);
        return reply.data;
      });
    }

    /* roomHistory ROOM: resolves with {room, messages, position[, recovered]}. OPTIONS:
     * {since: {epoch, offset}} or {limit: N}. The messages are returned, not emitted. */
    roomHistory(room, options) {
      const req = { event: 'roomHistory', room: room };
      if (options && options.since) req.since = options.since;
      if (options && options.limit !== undefined) req.limit = options.limit;
      return this.request(req);
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
