// Helpers for the SDK's tests: a real server's URL, players, bounded waits, and a TCP proxy that can
// cut connections and refuse new ones (a network outage between the client and a real server).
import net from "node:net";
import { randomUUID } from "node:crypto";
import { ScoreboardClient } from "../scoreboard.js";

export const BASE_URL = process.env.SCOREBOARD_URL;
if (!BASE_URL) throw new Error("SCOREBOARD_URL must name a running `scoreboard serve` (tests/e2e runs these tests)");
export const PASSWORD = "correct horse battery staple";
const WAIT_MS = 5000;

export function client(options = {}) {
  return new ScoreboardClient({ baseUrl: BASE_URL, backoff: { initialMs: 50, maxMs: 400 }, ...options });
}

/** A registered, logged-in client. */
export async function player(options = {}) {
  const sdk = client(options);
  const username = `js_${randomUUID().slice(0, 12)}`;
  await sdk.register(username, PASSWORD, username);
  await sdk.login(username, PASSWORD);
  return sdk;
}

/** Completes `times` actions for `sdk`'s user; the last answer. */
export async function earn(sdk, times = 1) {
  let result;
  for (let i = 0; i < times; i += 1) result = await sdk.completeAction((await sdk.requestAction()).action_id);
  return result;
}

/** Resolves with the first `event` detail of `sdk` for which `predicate` holds, or rejects after `ms`. */
export function until(sdk, event, predicate, ms = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`no matching "${event}" event within ${ms} ms`));
    }, ms);
    const stop = sdk.on(event, (detail) => {
      if (!predicate(detail)) return;
      clearTimeout(timer);
      stop();
      resolve(detail);
    });
    if (event === "board" && sdk.board && predicate({ ...sdk.board, type: "current" })) {
      clearTimeout(timer);
      stop();
      resolve({ ...sdk.board, type: "current" });
    }
  });
}

export const scoreOf = (board, userId) => board.top.find((entry) => entry.user_id === userId)?.score;

/** Records everything a client's WebSockets send and lets a test drop chosen incoming frames. */
export function tappedWebSocket({ drop = () => false } = {}) {
  const sent = [];
  class Tapped extends WebSocket {
    send(data) {
      sent.push(JSON.parse(data));
      super.send(data);
    }
    set onmessage(handler) {
      super.onmessage = (event) => {
        if (!drop(JSON.parse(event.data))) handler(event);
      };
    }
    get onmessage() {
      return super.onmessage;
    }
  }
  return { WebSocket: Tapped, sent };
}

/** A TCP proxy in front of the real server: `cut()` severs every connection; `block()` refuses new ones. */
export async function proxy() {
  const target = new URL(BASE_URL);
  const sockets = new Set();
  let blocked = false;
  const server = net.createServer((inbound) => {
    if (blocked) {
      inbound.destroy();
      return;
    }
    const outbound = net.connect(Number(target.port), target.hostname);
    for (const socket of [inbound, outbound]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => {});
    }
    inbound.pipe(outbound).pipe(inbound);
    inbound.on("close", () => outbound.destroy());
    outbound.on("close", () => inbound.destroy());
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    connections: () => sockets.size,
    block() {
      blocked = true;
    },
    unblock() {
      blocked = false;
    },
    cut() {
      for (const socket of sockets) socket.destroy();
    },
    close() {
      this.cut();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
