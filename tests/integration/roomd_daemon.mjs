// roomd_daemon.mjs -- a roomd of a Node test's own, on free loopback ports that stay the
// same across restart(): for the tests that need a restart of roomd (a new epoch of every
// room's stream) under a client that reconnects to the same URL. Used by test_roomd_js.mjs
// and tests/browser/demo_page.mjs. The binary: $ROOMD (make check sets it), else
// build/src/roomd. Every wait has a deadline.

import { spawn } from 'node:child_process';
import net from 'node:net';

const ROOMD = process.env.ROOMD || new URL('../../build/src/roomd', import.meta.url).pathname;
const READY_TIMEOUT = 10000;
const STOP_TIMEOUT = 5000;

/* A loopback port that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export class Daemon {
  /* OPTIONS: more --key=value settings (e.g. {starting_rooms: 'defaultRoom,lobby'}). */
  constructor(options = {}) {
    this.options = options;
    this.proc = null;
    this.log = [];
  }

  async start() {
    for (let attempt = 0; ; attempt++) {
      if (!this.tcpPort || attempt > 0) {
        this.tcpPort = await freePort();
        this.wsPort = await freePort();
      }
      if (await this._launch()) return this;
      // Exited before "roomd ready": most likely another process took a port.
      if (attempt >= 4) throw new Error(`roomd did not start; log:\n${this.log.join('')}`);
    }
  }

  /* Stop (SIGTERM) and start again on the same ports. */
  async restart() {
    await this.stop();
    if (!(await this._launch())) throw new Error(`roomd did not restart; log:\n${this.log.join('')}`);
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.wsPort}/`;
  }

  _launch() {
    const opts = Object.assign({
      bind: '127.0.0.1', port: this.tcpPort, websocket_bind: '127.0.0.1',
      websocket_port: this.wsPort, admin_port: 0, workers: 2,
    }, this.options);
    const argv = Object.entries(opts).map(([k, v]) => `--${k.replace(/_/g, '-')}=${v}`);
    const proc = spawn(ROOMD, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    return new Promise((resolve, reject) => {
      let seen = '';
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`no "roomd ready" within ${READY_TIMEOUT} ms; log:\n${this.log.join('')}`));
      }, READY_TIMEOUT);
      proc.stderr.setEncoding('utf8');
      proc.stderr.on('data', (d) => {
        this.log.push(d);
        seen += d;
        if (seen.includes('roomd ready')) {
          clearTimeout(timer);
          seen = '';
          resolve(true);
        }
      });
      proc.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      proc.once('exit', () => {
        clearTimeout(timer);
        resolve(false); // no-op if it was ready already
      });
    });
  }

  /* SIGTERM; resolves once it exited (with 0, else rejects). */
  stop() {
    const proc = this.proc;
    this.proc = null;
    if (!proc || proc.exitCode !== null) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`roomd did not exit within ${STOP_TIMEOUT} ms of SIGTERM`));
      }, STOP_TIMEOUT);
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else reject(new Error(`roomd exited with ${code ?? signal}; log:\n${this.log.join('')}`));
      });
      proc.kill('SIGTERM');
    });
  }
}
