// roomd_js_client.mjs URL ROOM -- one roomd.js client for test_restart.py: it joins ROOM and
// prints one JSON line per event ({"event":"room","room":...}, {"event":"close",...}), so the
// Python test can kill -9 and restart roomd and watch it come back.  Runs until stdin closes.
import { createRequire } from 'node:module';

const Roomd = createRequire(import.meta.url)(
  new URL('../../src/static/roomd.js', import.meta.url).pathname);
const [url, room] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const c = new Roomd(url, { minDelay: 100, maxDelay: 400 });
c.on('welcome', (w) => out({ event: 'welcome', room: w.room }));
c.on('room', (r) => out({ event: 'room', room: r }));
c.on('close', (e) => out({ event: 'close', code: e.code, reconnectIn: e.reconnectIn }));
c.once('welcome', async () => {
  try {
    await c.roomChange(room);
  } catch (e) {
    out({ event: 'error', error: String(e) });
  }
});
process.stdin.on('end', () => { c.close(); process.exit(0); });
process.stdin.resume();
