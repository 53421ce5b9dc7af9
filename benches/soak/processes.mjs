// Child processes of the soak (Redis, the provider, the upstream, the gateway): started with
// their output in a log file of their own, and awaited until they say they are ready — a
// line they print — rather than polled.
import { spawn } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';

// Children still running when the soak ends, however it ends, are not left behind.
const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  }
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

/** A free TCP port on `host` (loopback): ports must be known before the configs are written. */
export function freePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts `command` and resolves once a line of its output matches `ready`, with the match.
 * Rejects when the process exits first or stays silent for `timeoutMs`. Every line goes to
 * `logFile` (appended: a restarted process continues its log) and to `onLine`.
 */
export function launch(command, args, { logFile, ready, onLine = () => {}, timeoutMs = 30000, env }) {
  // Written synchronously, line by line: nothing is lost when the soak exits.
  const log = openSync(logFile, 'a');
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  live.add(child);
  // 'close', not 'exit': by then every line the process printed has been read.
  const exited = new Promise((resolve) => {
    child.on('close', (code, signal) => {
      live.delete(child);
      closeSync(log);
      resolve({ code, signal });
    });
  });
  const readyLine = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command} was not ready within ${timeoutMs} ms (see ${logFile})`)), timeoutMs);
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => {
        writeSync(log, `${line}\n`);
        onLine(line);
        const match = ready.exec(line);
        if (match) {
          clearTimeout(timer);
          resolve(match);
        }
      });
    }
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${command} exited (${signal ?? code}) before it was ready (see ${logFile})`));
    });
  });
  return readyLine.then((match) => ({ child, match, exited }));
}

/** Sends `signal` and waits for the process to be gone. */
export async function stop({ child, exited }, signal = 'SIGTERM') {
  if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  return exited;
}
