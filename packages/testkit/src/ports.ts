import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * Ports are handed out below the kernel's ephemeral range (`ip_local_port_range`): a port taken
 * from the kernel with `listen(0)` and released again can be given to the next outgoing connection
 * (a PostgreSQL or Redis client) before the child binds it. Each port handed out is also reserved
 * with a file in a directory every caller on this machine shares (parallel test files, the bench,
 * other checkouts' test runs), so no two callers get the same one; a reservation lasts while the
 * process that made it lives.
 */
const RESERVATIONS = path.join(tmpdir(), 'ledger-testkit-ports');
const FIRST_PORT = 20_000;

function ephemeralStart(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    return Number(low) || 32_768;
  } catch {
    return 32_768;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the reservation file of `port`, or reclaims it from a process that has gone; false if taken. */
function reserve(port: number): boolean {
  const file = path.join(RESERVATIONS, String(port));
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number(readFileSync(file, 'utf8').trim());
      // An empty file is a reservation being written right now: taken.
      if (!owner || alive(owner)) return false;
      try {
        unlinkSync(file);
      } catch {
        return false;
      }
    }
  }
  return false;
}

const held = new Set<number>();
process.once('exit', () => {
  for (const port of held) {
    try {
      unlinkSync(path.join(RESERVATIONS, String(port)));
    } catch {
      // Already reclaimed.
    }
  }
});

/** Whether a server can listen on `port` right now (nothing else does). */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** The next port to try: each port handed out is reserved, so the search goes on from there. */
let next = FIRST_PORT;

/** Reserves `port` for this process and checks nothing listens on it. */
async function take(port: number): Promise<boolean> {
  if (!reserve(port)) return false;
  held.add(port);
  return bindable(port);
}

/**
 * `count` distinct TCP ports on 127.0.0.1 that nothing listens on, that no other caller on this
 * machine is handed while this process lives, and that the kernel never picks for a connection.
 * With `partnerOffset`, each port's partner (port + offset, e.g. a Redis Cluster node's bus port)
 * is taken with it, and both stay below the ephemeral range.
 */
export async function freePorts(count: number, options: { partnerOffset?: number } = {}): Promise<number[]> {
  mkdirSync(RESERVATIONS, { recursive: true });
  const offset = options.partnerOffset ?? 0;
  const end = ephemeralStart() - offset;
  if (end <= FIRST_PORT) throw new Error(`no room for ports ${offset} apart below ${ephemeralStart()}`);
  const ports: number[] = [];
  for (let tried = 0; ports.length < count; tried += 1) {
    if (tried >= end - FIRST_PORT) throw new Error(`no free port between ${FIRST_PORT} and ${end}`);
    const port = next < end ? next : FIRST_PORT;
    next = port + 1 >= end ? FIRST_PORT : port + 1;
    if ((await take(port)) && (offset === 0 || (await take(port + offset)))) ports.push(port);
  }
  return ports;
}

/** One port from {@link freePorts}. */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port!;
}
