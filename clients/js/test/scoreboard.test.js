// The SDK against a real `scoreboard serve` (SCOREBOARD_URL): auth, actions, and the live board over
// WebSocket and SSE through real disconnects.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { ScoreboardError } from "../scoreboard.js";
import { BASE_URL, client, earn, player, proxy, scoreOf, tappedWebSocket, until } from "./support.js";

const clients = [];
const track = (sdk) => (clients.push(sdk), sdk);
after(() => clients.forEach((sdk) => sdk.disconnect()));

/** Earns until `sdk`'s user leads the board, so its next point is a published top-10 change. */
async function lead(sdk) {
  const { entries } = await sdk.leaderboard(1);
  const mine = (await sdk.userScore()).score;
  const needed = entries.length ? Math.max(0, entries[0].score - mine + 1) : 1;
  return earn(sdk, needed);
}

describe("session", () => {
  test("login yields a session for the registered user", async () => {
    const sdk = client();
    const account = await sdk.register(`js_${Date.now()}`, "correct horse battery staple");
    const session = await sdk.login(account.username, "correct horse battery staple");
    assert.equal(session.userId, account.user_id);
    assert.ok(session.expiresAt > Date.now());
  });

  test("a wrong password is a ScoreboardError with the server's code", async () => {
    const sdk = await player();
    const other = client();
    await assert.rejects(other.login(sdk.session.username, "not the password!"), {
      name: "ScoreboardError",
      status: 401,
      code: "invalid_credentials",
    });
  });

  test("refresh rotates the pair and the spent refresh token is refused", async () => {
    const sdk = await player();
    const old = sdk.session;
    const fresh = await sdk.refresh();
    assert.notEqual(fresh.refreshToken, old.refreshToken);
    const replay = client({ session: old });
    await assert.rejects(replay.refresh(), { status: 401 });
    assert.equal(replay.session, null);
  });

  test("a refused access token is refreshed once and the call retried", async () => {
    const sdk = await player();
    const refreshToken = sdk.session.refreshToken;
    sdk.setSession({ ...sdk.session, accessToken: `${sdk.session.accessToken}x` });
    const ticket = await sdk.requestAction();
    assert.match(ticket.action_id, /^[0-9a-f-]{36}$/);
    assert.notEqual(sdk.session.refreshToken, refreshToken);
  });

  test("logout revokes the access token on the server", async () => {
    const sdk = await player();
    const session = sdk.session;
    const sessions = [];
    sdk.on("session", (value) => sessions.push(value));
    await sdk.logout();
    assert.deepEqual(sessions, [null]);
    const replay = client({ session: { ...session, refreshToken: null } });
    await assert.rejects(replay.requestAction(), { status: 401 });
  });
});

describe("actions", () => {
  test("a completed action raises the score and rank the server reports", async () => {
    const sdk = await player();
    const ticket = await sdk.requestAction("default");
    assert.equal(ticket.points, 1);
    const result = await sdk.completeAction(ticket.action_id);
    assert.equal(result.new_score, 1);
    const mine = await sdk.userScore();
    assert.equal(mine.score, 1);
    assert.equal(mine.rank, result.rank);
  });

  test("the same ticket twice is a duplicate_action error", async () => {
    const sdk = await player();
    const ticket = await sdk.requestAction();
    await sdk.completeAction(ticket.action_id);
    await assert.rejects(sdk.completeAction(ticket.action_id), (error) => {
      assert.ok(error instanceof ScoreboardError);
      assert.equal(error.code, "duplicate_action");
      assert.equal(error.problem.score, 1);
      return true;
    });
  });

  test("a lost answer is retried and the duplicate tells the outcome once", async () => {
    let lose = 1;
    const lossy = async (url, init) => {
      const response = await fetch(url, init);
      if (String(url).endsWith("/api/score/update") && lose-- > 0) throw new TypeError("connection reset");
      return response;
    };
    const sdk = await player({ fetch: lossy });
    const result = await sdk.completeAction((await sdk.requestAction()).action_id);
    assert.equal(result.duplicate, true);
    assert.equal(result.new_score, 1);
    assert.equal((await sdk.userScore()).score, 1);
  });

  test("an unknown action type is refused with 400", async () => {
    const sdk = await player();
    await assert.rejects(sdk.requestAction("no-such-type"), { status: 400 });
  });
});

describe("live board", () => {
  test("a snapshot first, then the update for a completed action", async () => {
    const watcher = track(client());
    const states = [];
    watcher.on("state", (event) => states.push(`${event.state}/${event.transport}`));
    const boards = [];
    watcher.onBoard((board) => boards.push(board));
    const first = await until(watcher, "board", () => true);
    const sdk = await player();
    await lead(sdk);
    await until(watcher, "board", (board) => scoreOf(board, sdk.session.userId) !== undefined);
    const seen = boards.find((board) => scoreOf(board, sdk.session.userId) !== undefined);
    assert.equal(boards[0].type, "snapshot");
    assert.equal(seen.type, "update");
    assert.equal(seen.epoch, first.epoch);
    assert.ok(seen.seq > first.seq);
    assert.deepEqual(states.slice(0, 2), ["connecting/websocket", "live/websocket"]);
  });

  test("after a cut and an outage the WebSocket reconnects with back-off and replays what it missed", async () => {
    const gate = await proxy();
    try {
      const watcher = track(client({ baseUrl: gate.url }));
      const delays = [];
      watcher.on("state", (event) => event.retryInMs !== undefined && delays.push(event.retryInMs));
      watcher.onBoard(() => {});
      const before = await until(watcher, "board", () => true);
      gate.block();
      gate.cut();
      await until(watcher, "state", (event) => event.state === "reconnecting" && event.attempt >= 3);
      const sdk = await player();
      const { new_score: score } = await lead(sdk);
      const replayed = [];
      watcher.on("board", (board) => replayed.push(board));
      gate.unblock();
      await until(watcher, "board", (board) => scoreOf(board, sdk.session.userId) === score);
      assert.ok(delays.every((ms, i) => ms <= 400 && (i === 0 || ms >= 25)), `delays ${delays}`);
      assert.ok(Math.max(...delays) > delays[0], `back-off grew: ${delays}`);
      assert.ok(replayed.every((board) => board.type === "update" && board.epoch === before.epoch));
      assert.deepEqual(
        replayed.map((board) => board.seq),
        replayed.map((_, i) => before.seq + 1 + i),
      );
    } finally {
      await gate.close();
    }
  });

  test("a missed frame makes the client resubscribe with since and apply the replay in order", async () => {
    let dropped = null;
    const tap = tappedWebSocket({
      drop: (message) => {
        if (message.type !== "update" || dropped !== null) return false;
        dropped = message.seq;
        return true;
      },
    });
    const watcher = track(client({ WebSocket: tap.WebSocket }));
    const seqs = [];
    watcher.onBoard((board) => seqs.push(board.seq));
    const first = await until(watcher, "board", () => true);
    const sdk = await player();
    await lead(sdk);
    await earn(sdk, 2);
    const score = (await sdk.userScore()).score;
    await until(watcher, "board", (board) => scoreOf(board, sdk.session.userId) === score);
    assert.equal(dropped, first.seq + 1);
    const resubscribe = tap.sent.find((message) => message.since);
    assert.deepEqual(resubscribe.since, { epoch: first.epoch, seq: first.seq });
    assert.deepEqual(
      seqs,
      seqs.map((_, i) => first.seq + i),
    );
  });

  test("a frame lost again in the replay does not stall the board past the patience", async () => {
    let lost = null;
    const tap = tappedWebSocket({
      drop: (message) => {
        if (message.type === "update" && lost === null) lost = message.seq;
        return message.seq === lost; // the first update, and its replay, never arrive
      },
    });
    const watcher = track(client({ WebSocket: tap.WebSocket, resyncPatienceMs: 100 }));
    const seqs = [];
    const resyncs = [];
    watcher.on("state", (event) => event.resync && resyncs.push(event));
    watcher.onBoard((board) => seqs.push(board.seq));
    const first = await until(watcher, "board", () => true);
    const sdk = await player();
    await lead(sdk);
    await earn(sdk, 1); // at least one update after the lost one: the gap is seen
    await new Promise((resolve) => setTimeout(resolve, 150)); // let the patience run out
    const score = await earn(sdk, 1).then((result) => result.new_score);
    await until(watcher, "board", (board) => scoreOf(board, sdk.session.userId) === score);
    assert.equal(lost, first.seq + 1);
    assert.equal(resyncs.length, 1);
    assert.ok(!seqs.includes(lost), `the lost seq ${lost} never arrived: ${seqs}`);
  });

  test("when WebSockets cannot connect the client falls back to the SSE stream", async () => {
    // /healthz answers HTTP but never upgrades, like a proxy that strips the Upgrade header
    const watcher = track(client({ wsUrl: `${BASE_URL.replace(/^http/, "ws")}/healthz` }));
    const states = [];
    watcher.on("state", (event) => states.push(`${event.state}/${event.transport}`));
    watcher.onBoard(() => {});
    await until(watcher, "state", (event) => event.state === "live");
    assert.equal(states.at(-1), "live/sse");
    const sdk = await player();
    const { new_score: score } = await lead(sdk);
    await until(watcher, "board", (board) => scoreOf(board, sdk.session.userId) === score);
  });

  test("the SSE stream resumes from Last-Event-ID after a cut", async () => {
    const gate = await proxy();
    try {
      const watcher = track(client({ baseUrl: gate.url, transport: "sse" }));
      watcher.onBoard(() => {});
      const before = await until(watcher, "board", () => true);
      gate.block();
      gate.cut();
      await until(watcher, "state", (event) => event.state === "reconnecting");
      const sdk = await player();
      const { new_score: score } = await lead(sdk);
      const replayed = [];
      watcher.on("board", (board) => replayed.push(board));
      gate.unblock();
      await until(watcher, "board", (board) => scoreOf(board, sdk.session.userId) === score);
      assert.ok(replayed.length > 0 && replayed.every((board) => board.type === "update"));
      assert.equal(replayed[0].seq, before.seq + 1);
    } finally {
      await gate.close();
    }
  });

  test("disconnect closes the connection and stops board events", async () => {
    const watcher = track(client());
    watcher.onBoard(() => {});
    await until(watcher, "board", () => true);
    watcher.disconnect();
    assert.equal(watcher.state, "closed");
    const late = [];
    watcher.on("board", (board) => late.push(board));
    const other = track(client());
    other.onBoard(() => {});
    await until(other, "board", () => true);
    const sdk = await player();
    const { new_score: score } = await lead(sdk);
    await until(other, "board", (board) => scoreOf(board, sdk.session.userId) === score);
    assert.deepEqual(late, []);
  });
});
